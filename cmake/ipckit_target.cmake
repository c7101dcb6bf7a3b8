# ipckit_target(<target>): the compile settings every ipckit target shares. All flags go on
# targets; nothing is added to the global CMAKE_CXX_FLAGS.
function(ipckit_target target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF POSITION_INDEPENDENT_CODE ON)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                         -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
                         -Wnull-dereference -Wimplicit-fallthrough)
  if(IPCKIT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(IPCKIT_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${IPCKIT_SANITIZE} -fno-omit-frame-pointer
                           -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${IPCKIT_SANITIZE})
  endif()
endfunction()
