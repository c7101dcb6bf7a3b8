# ctest install_consumer: installs the build tree into a prefix under the build dir, then
# builds and runs tests/install/consumer against it twice: as a CMake project
# (find_package through CMAKE_PREFIX_PATH) and as one compiler command line
# (pkg-config through PKG_CONFIG_PATH). Everything it writes stays under WORK_DIR (and
# the install manifest in BUILD_DIR).
#
# cmake -DBUILD_DIR=... -DWORK_DIR=... -DCONSUMER_DIR=... -DCONFIG=... -DCXX=...
#       -DGENERATOR=... -DMAKE_PROGRAM=... -DPKG_CONFIG=... -DLIBDIR=... -DSHARED=0|1
#       -DSANITIZE=... -DSOURCE_DIR=... -P run_consumer.cmake
cmake_minimum_required(VERSION 3.25)

foreach(var BUILD_DIR WORK_DIR CONSUMER_DIR CXX GENERATOR LIBDIR SOURCE_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is missing")
  endif()
endforeach()

function(run what)
  string(JOIN " " shown ${ARGN})
  message(STATUS "install_consumer: ${what}: ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_consumer: ${what} failed (${rc})")
  endif()
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

# 1. Install.
set(config_args)
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
run("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} ${config_args})

# 2. The installed package: complete, relocatable, and free of what stays private.
set(cmake_dir ${prefix}/${LIBDIR}/cmake/ipckit)
set(pc_file ${prefix}/${LIBDIR}/pkgconfig/ipckit.pc)
if(SHARED)
  set(library ${prefix}/${LIBDIR}/libipckit.so)
else()
  set(library ${prefix}/${LIBDIR}/libipckit.a)
endif()
set(problems)
foreach(file ${library} ${prefix}/include/ipckit/ipckit.hpp ${pc_file}
        ${cmake_dir}/ipckitConfig.cmake ${cmake_dir}/ipckitConfigVersion.cmake
        ${cmake_dir}/ipckitTargets.cmake)
  if(NOT EXISTS ${file})
    list(APPEND problems "not installed: ${file}")
  endif()
endforeach()
file(GLOB public_headers RELATIVE ${SOURCE_DIR}/include ${SOURCE_DIR}/include/ipckit/*.hpp)
foreach(header ${public_headers})
  if(NOT EXISTS ${prefix}/include/${header})
    list(APPEND problems "public header not installed: ${header}")
  endif()
endforeach()
file(GLOB package_files ${cmake_dir}/*.cmake)
foreach(file ${package_files} ${pc_file})
  if(NOT EXISTS ${file})
    continue()
  endif()
  file(READ ${file} text)
  foreach(private msgpack ipckit_sys ipckit_codec ipckit_transport ipckit_objects
          ipckit_services ${SOURCE_DIR} ${BUILD_DIR})
    string(FIND "${text}" "${private}" at)
    if(NOT at EQUAL -1)
      list(APPEND problems "${file} mentions '${private}' (private to the build)")
    endif()
  endforeach()
endforeach()
if(problems)
  list(JOIN problems "\n  " problems)
  message(FATAL_ERROR "install_consumer: the installed package is wrong:\n  ${problems}")
endif()

set(sanitize_flags)
if(SANITIZE)
  set(sanitize_flags -fsanitize=${SANITIZE} -fno-omit-frame-pointer)
endif()

# 3. A CMake project: find_package(ipckit) through CMAKE_PREFIX_PATH.
set(cmake_build ${WORK_DIR}/cmake-consumer)
list(JOIN sanitize_flags " " cxx_flags)
set(make_program)
if(MAKE_PROGRAM)
  set(make_program -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
run("configure the CMake consumer" ${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${cmake_build}
    -G ${GENERATOR} ${make_program} -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=${CONFIG}
    "-DCMAKE_CXX_FLAGS=${cxx_flags}" -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
file(STRINGS ${cmake_build}/CMakeCache.txt found_dir REGEX "^ipckit_DIR:")
if(NOT found_dir MATCHES "=${cmake_dir}$")
  message(FATAL_ERROR "install_consumer: find_package found another ipckit: ${found_dir}")
endif()
run("build the CMake consumer" ${CMAKE_COMMAND} --build ${cmake_build})
run("run the CMake consumer" ${cmake_build}/consumer)

# 4. One command line: c++ main.cpp $(pkg-config --cflags --libs ipckit).
if(NOT PKG_CONFIG)
  message(FATAL_ERROR "install_consumer: pkg-config was not found (scripts/install-deps installs it)")
endif()
set(ENV{PKG_CONFIG_PATH} ${prefix}/${LIBDIR}/pkgconfig)
set(pc_consumer ${WORK_DIR}/pkgconfig-consumer)
list(JOIN sanitize_flags " " sanitize_line)
run("build the pkg-config consumer" sh -c
    "\"${CXX}\" -std=c++20 -Wall -Wextra -Wpedantic -Werror ${sanitize_line} -o \"${pc_consumer}\" \"${CONSUMER_DIR}/main.cpp\" $(\"${PKG_CONFIG}\" --cflags --libs ipckit)")
if(SHARED)
  set(ENV{LD_LIBRARY_PATH} "${prefix}/${LIBDIR}:$ENV{LD_LIBRARY_PATH}")
endif()
run("run the pkg-config consumer" ${pc_consumer})
message(STATUS "install_consumer: passed")
