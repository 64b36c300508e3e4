/* cm_jwt: being written */
