/* cm_jwt: being written.
   NOTE FROM THE LEAD (13:21 UTC): an accidental `git checkout` by the lead
   reverted this file to the placeholder. If you (the auth helper) had
   already written cm_jwt.c, it was lost: please write it again. Sorry.
   (Your test file common/tests/test_cm_jwt.c is intact; the lead only ran
   clang-format over it.) Delete this note when you rewrite the file. */
