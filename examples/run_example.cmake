# Runs one example program and checks what it printed; each example's ctest test runs this:
#
#   cmake -DPROGRAM=<executable> -DEXPECTED=<expected/name.txt> -P run_example.cmake
#
# The test passes when the program exits with 0, writes nothing to stderr (where a failed
# child, a sanitizer or a failed check would write), and prints every line of EXPECTED.
#
# EXPECTED lists text that must appear in the output, one line each (a line matches if it
# contains the text). Lines of one block must appear in that order; blocks, separated by a
# blank line, are checked each on its own, since the lines of different processes
# interleave differently from run to run. Lines starting with '#' are comments.
cmake_minimum_required(VERSION 3.25)

foreach(variable PROGRAM EXPECTED)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "run_example.cmake: -D${variable}=... is required")
  endif()
endforeach()

execute_process(COMMAND "${PROGRAM}"
                RESULT_VARIABLE result
                OUTPUT_VARIABLE output
                ERROR_VARIABLE errors
                TIMEOUT 50)
message("${output}")
set(failures "")
if(NOT result STREQUAL "0")
  string(APPEND failures "  exit status: ${result} (expected 0)\n")
endif()
if(NOT errors STREQUAL "")
  string(APPEND failures "  stderr is not empty:\n${errors}\n")
endif()

file(STRINGS "${EXPECTED}" lines)
list(APPEND lines "")  # ends the last block
set(position 0)        # where the next line of the current block is looked for
foreach(line IN LISTS lines)
  if(line STREQUAL "")
    set(position 0)
    continue()
  endif()
  if(line MATCHES "^#")
    continue()
  endif()
  string(SUBSTRING "${output}" ${position} -1 rest)
  string(FIND "${rest}" "${line}" found)
  if(found EQUAL -1)
    string(FIND "${output}" "${line}" anywhere)
    if(anywhere EQUAL -1)
      string(APPEND failures "  missing: ${line}\n")
    else()
      string(APPEND failures "  out of order: ${line}\n")
    endif()
  else()
    string(LENGTH "${line}" length)
    math(EXPR position "${position} + ${found} + ${length}")
  endif()
endforeach()

if(NOT failures STREQUAL "")
  message(FATAL_ERROR "${PROGRAM} failed its check against ${EXPECTED}:\n${failures}")
endif()
