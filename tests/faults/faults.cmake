# Fault-injection tests (label "faults"): tests/faults/test_*.c, one Criterion binary each,
# linked with the integration harness, against the "servers" fixture of tests/tests.cmake
# (include this file after it). The tests restart redis-server and stop PostgreSQL, so
# they run one at a time (the binary forces --jobs 1) and never alongside any other test
# (RUN_SERIAL), even under ctest -j.
#
#   ctest -L faults                          the short run (RU_FAULTS_SCALE=1, a few minutes)
#   ctest -L faults -R operator              only the operator actions (a CTest test of its own)
#   tests/faults/run-long [BUILD_DIR]        the long run (RU_FAULTS_SCALE=10), with a table
if(DEFINED ENV{RU_FAULTS_SCALE} AND "$ENV{RU_FAULTS_SCALE}" MATCHES "^[0-9]+$")
  math(EXPR RU_FAULTS_TIMEOUT "600 + 300 * $ENV{RU_FAULTS_SCALE}")
else()
  set(RU_FAULTS_TIMEOUT 900)
endif()
# Tests of a binary that are CTest tests of their own, faults_<prefix> (each Criterion test
# named <prefix>*); the binary's own CTest test runs the others.
set(RU_FAULT_OWN_test_faults operator_actions)
file(GLOB RU_FAULT_TESTS ${CMAKE_CURRENT_SOURCE_DIR}/tests/faults/test_*.c)
foreach(src ${RU_FAULT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src} tests/integ/harness.c)
  target_include_directories(${name} PRIVATE tests/integ)
  target_link_libraries(${name} PRIVATE rollupd_core PkgConfig::CRITERION)
  target_compile_definitions(${name} PRIVATE
    RU_FAULTS_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
  set(own "")
  set(ctests faults_${name})
  foreach(prefix ${RU_FAULT_OWN_${name}})
    list(APPEND own "faults/${prefix}*")
    list(APPEND ctests faults_${prefix})
    add_test(NAME faults_${prefix} COMMAND ${name} --jobs 1 --filter "faults/${prefix}*")
  endforeach()
  if(own)
    list(JOIN own "|" own)
    add_test(NAME faults_${name} COMMAND ${name} --jobs 1 --filter "!(${own})")
  else()
    add_test(NAME faults_${name} COMMAND ${name} --jobs 1)
  endif()
  set_tests_properties(${ctests} PROPERTIES
    LABELS faults FIXTURES_REQUIRED servers RUN_SERIAL TRUE TIMEOUT ${RU_FAULTS_TIMEOUT}
    ENVIRONMENT "RU_TESTENV=${RU_TESTENV_DIR}/env;RU_BUILD_DIR=${CMAKE_BINARY_DIR};RU_SOURCE_DIR=${CMAKE_CURRENT_SOURCE_DIR}")
endforeach()
