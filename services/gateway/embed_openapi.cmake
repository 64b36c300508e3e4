# Turns docs/openapi.json into a C array (gw_openapi_doc.c), so the
# gateway serves the document it was built with at GET /api/openapi.json.
# A document that is not valid JSON, or not OpenAPI 3.1, fails the build.
# cmake -DSRC=.../docs/openapi.json -DOUT=.../gw_openapi_doc.c -P embed_openapi.cmake
file (READ ${SRC} text)
string (JSON version ERROR_VARIABLE json_error GET "${text}" openapi)
if (json_error)
    message (FATAL_ERROR "${SRC}: not valid JSON: ${json_error}")
endif ()
if (NOT version MATCHES "^3\\.1\\.")
    message (FATAL_ERROR "${SRC}: \"openapi\" is \"${version}\", expected 3.1.x")
endif ()
file (READ ${SRC} hex HEX)
string (LENGTH "${hex}" hex_len)
math (EXPR len "${hex_len} / 2")
string (REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
set (body "/* Generated from docs/openapi.json by embed_openapi.cmake. */\n")
string (APPEND body "#include \"gw_openapi.h\"\n\n")
string (APPEND body "const char gw_openapi_doc[] = {${hex} 0x00};\n")
string (APPEND body "const size_t gw_openapi_doc_len = ${len};\n")
file (WRITE ${OUT}.tmp "${body}")
file (COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
