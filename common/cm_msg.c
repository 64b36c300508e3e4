/* cm_msg: being written */
