/* cm_service: being written */
