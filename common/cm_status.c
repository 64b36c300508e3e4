/* cm_status: being written */
