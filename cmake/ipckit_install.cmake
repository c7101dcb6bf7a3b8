# Install rules: the ipckit library, its public headers, the CMake package (imported target
# ipckit::ipckit for find_package(ipckit CONFIG)) and the pkg-config file ipckit.pc.
#
#   cmake --install build/release --prefix /opt/ipckit
#   find_package(ipckit 0.1 CONFIG REQUIRED)  +  target_link_libraries(app PRIVATE ipckit::ipckit)
#   g++ -std=c++20 app.cpp $(pkg-config --cflags --libs ipckit)
#
# The library is static unless BUILD_SHARED_LIBS is ON. tests/install (ctest
# install_consumer) installs the build tree into a prefix under the build dir and builds a
# consumer against it both ways.
#
# What the installed package must not contain: the per-layer OBJECT libraries (their objects
# are inside libipckit; `ipckit` takes them through $<TARGET_OBJECTS:...>, never through
# target_link_libraries) and header-only private dependencies such as msgpack-cxx, which
# only src/codec compiles against. tests/install checks the installed files for both.
#
# Link dependencies of the installed library
# ------------------------------------------
# A library that libipckit calls into (OpenSSL's libcrypto, libzmq, libhiredis) is needed by
# every consumer of the static library, and by none of the shared one at compile time. For
# each, do three things:
#   1. src/CMakeLists.txt: link the layer that uses it (compile flags) and `ipckit` itself
#      (the link), e.g.
#        target_link_libraries(ipckit_transport PRIVATE OpenSSL::Crypto)
#        target_link_libraries(ipckit PRIVATE OpenSSL::Crypto)
#      (a static ipckit then exports $<LINK_ONLY:OpenSSL::Crypto>, so consumers need it).
#   2. the one line below: ipckit_install_dependency(<code for ipckitConfig.cmake>
#      PKG_CONFIG <module> | LIBS <-lflags>). The code must define the imported target that
#      step 1 linked. The lines the planned dependencies will need:
#        ipckit_install_dependency("find_dependency(OpenSSL)" PKG_CONFIG libcrypto)
#        ipckit_install_dependency("find_dependency(cppzmq)" PKG_CONFIG libzmq)
#        ipckit_install_dependency("find_dependency(PkgConfig)
#          pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)" PKG_CONFIG hiredis)
#   3. scripts/install-deps: the -dev package (consumers need it as well).
# Header-only private dependencies (msgpack-cxx) need none of this: link them to the layer
# only, or wrap them as $<BUILD_INTERFACE:...> if `ipckit` itself must see them.
#
# In ipckit.pc the dependencies go to Requires/Libs when the library is static (every
# consumer links them, so plain `pkg-config --libs ipckit` is a complete link line) and to
# Requires.private/Libs.private when it is shared (only `pkg-config --static` wants them).

option(IPCKIT_INSTALL "Generate the install rules" ${PROJECT_IS_TOP_LEVEL})
if(NOT IPCKIT_INSTALL)
  return()
endif()

include(CMakePackageConfigHelpers)

set(IPCKIT_CONFIG_DEPENDENCIES "")  # CMake code run by ipckitConfig.cmake
set(IPCKIT_PC_DEPENDS "")           # pkg-config modules
set(IPCKIT_PC_DEPENDS_LIBS "")      # plain linker flags
macro(ipckit_install_dependency code)
  cmake_parse_arguments(_ipckit_dep "" "" "PKG_CONFIG;LIBS" ${ARGN})
  string(APPEND IPCKIT_CONFIG_DEPENDENCIES "${code}\n")
  list(APPEND IPCKIT_PC_DEPENDS ${_ipckit_dep_PKG_CONFIG})
  list(APPEND IPCKIT_PC_DEPENDS_LIBS ${_ipckit_dep_LIBS})
endmacro()

# --- link dependencies of libipckit, one line each (see above) -------------------------
ipckit_install_dependency("find_dependency(OpenSSL)" PKG_CONFIG libcrypto)
# ---------------------------------------------------------------------------------------

set(IPCKIT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/ipckit)

install(TARGETS ipckit EXPORT ipckitTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ipckit
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")
install(EXPORT ipckitTargets NAMESPACE ipckit:: DESTINATION ${IPCKIT_CMAKE_DIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/ipckitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ipckitConfig.cmake
  INSTALL_DESTINATION ${IPCKIT_CMAKE_DIR})
# 0.x: a minor version may break the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ipckitConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ipckitConfig.cmake ${PROJECT_BINARY_DIR}/ipckitConfigVersion.cmake
  DESTINATION ${IPCKIT_CMAKE_DIR})

# ipckit.pc finds its prefix from its own place (${pcfiledir}), so the same file works
# under any --prefix given to `cmake --install`.
list(JOIN IPCKIT_PC_DEPENDS ", " _ipckit_requires)
list(JOIN IPCKIT_PC_DEPENDS_LIBS " " _ipckit_libs)
set(IPCKIT_PC_REQUIRES "")
set(IPCKIT_PC_REQUIRES_PRIVATE "")
set(IPCKIT_PC_LIBS "")
set(IPCKIT_PC_LIBS_PRIVATE "")
get_target_property(_ipckit_type ipckit TYPE)
if(_ipckit_type STREQUAL "SHARED_LIBRARY")
  set(IPCKIT_PC_REQUIRES_PRIVATE "${_ipckit_requires}")
  set(IPCKIT_PC_LIBS_PRIVATE "${_ipckit_libs}")
else()
  set(IPCKIT_PC_REQUIRES "${_ipckit_requires}")
  if(_ipckit_libs)
    set(IPCKIT_PC_LIBS " ${_ipckit_libs}")
  endif()
endif()
set(_ipckit_pcdir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${_ipckit_pcdir}")
  set(IPCKIT_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _ipckit_up "/root/${_ipckit_pcdir}" "/root")
  string(REGEX REPLACE "/$" "" _ipckit_up "${_ipckit_up}")
  set(IPCKIT_PC_PREFIX "\${pcfiledir}/${_ipckit_up}")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(IPCKIT_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(IPCKIT_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
configure_file(${CMAKE_CURRENT_LIST_DIR}/ipckit.pc.in ${PROJECT_BINARY_DIR}/ipckit.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/ipckit.pc DESTINATION ${_ipckit_pcdir})
