/* cm_config: being written */
