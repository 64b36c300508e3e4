# Turns a text file into a C source defining
#   const char NAME[] (the file's bytes, NUL-terminated) and
#   const size_t NAME_len (without the NUL).
# Usage: cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake
file (READ "${IN}" hex HEX)
string (LENGTH "${hex}" hexlen)
math (EXPR len "${hexlen} / 2")
string (REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# Break the one long line every 16 bytes so compilers and diffs stay happy.
string (REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file (WRITE "${OUT}.tmp"
      "/* Generated from ${IN} by embed.cmake: do not edit. */\n"
      "#include <stddef.h>\n"
      "const char ${NAME}[] = {\n${bytes}0x00};\n"
      "const size_t ${NAME}_len = ${len};\n")
file (COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file (REMOVE "${OUT}.tmp")
