/* cm_db: being written */
