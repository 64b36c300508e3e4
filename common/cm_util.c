/* cm_util: being written */
