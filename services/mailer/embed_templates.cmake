# Turns every file of services/mailer/templates into a C array, so the
# binary carries its templates (no install path to get wrong);
# SAFESHARE_MAIL_TEMPLATE_DIR can replace them at run time.
# cmake -DSRC_DIR=... -DOUT=... -P embed_templates.cmake
file (GLOB files RELATIVE ${SRC_DIR} ${SRC_DIR}/*.subject ${SRC_DIR}/*.txt
      ${SRC_DIR}/*.html)
list (SORT files)
set (body "/* Generated from services/mailer/templates by embed_templates.cmake. */\n")
string (APPEND body "#include \"maild_template.h\"\n\n")
set (table "")
set (i 0)
foreach (f ${files})
    file (READ ${SRC_DIR}/${f} hex HEX)
    string (REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
    string (APPEND body "static const char s_file_${i}[] = {${hex} 0x00};\n")
    string (APPEND table "    {\"${f}\", s_file_${i}},\n")
    math (EXPR i "${i} + 1")
endforeach ()
string (APPEND body "\nconst maild_template_file_t maild_template_builtin[] = {\n${table}"
        "    {0, 0},\n};\n")
file (WRITE ${OUT}.tmp "${body}")
file (COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
