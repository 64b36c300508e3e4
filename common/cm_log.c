/* cm_log: being written */
