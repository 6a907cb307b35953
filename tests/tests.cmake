# Unit tests: one Criterion binary per pure module (label "unit").
# Integration tests: tests/integ/*.c against a private redis-server and PostgreSQL that
# the "servers" fixture starts on free loopback ports and always stops (label "integration").
pkg_check_modules(CRITERION REQUIRED IMPORTED_TARGET criterion)

foreach(m util arena redisurl redact libcfg config envcfg log ingest report utf8 json event keycheck
        store batch pgerr sql pgnum userset rowcodec rowstate rowcache cluster resp pcache stream)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/tests/test_${m}.c)
    add_executable(test_${m} tests/test_${m}.c)
    target_link_libraries(test_${m} PRIVATE rollupd_core PkgConfig::CRITERION)
    target_compile_definitions(test_${m} PRIVATE
      RU_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
    add_test(NAME unit_${m} COMMAND test_${m} --jobs 1)
    set_tests_properties(unit_${m} PROPERTIES LABELS unit TIMEOUT 120)
  endif()
endforeach()

set(RU_TESTENV_DIR ${CMAKE_CURRENT_BINARY_DIR}/testenv)
add_test(NAME servers_start
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/scripts/testenv start ${RU_TESTENV_DIR})
add_test(NAME servers_stop
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/scripts/testenv stop ${RU_TESTENV_DIR})
set_tests_properties(servers_start PROPERTIES FIXTURES_SETUP servers LABELS integration
                     TIMEOUT 180)
set_tests_properties(servers_stop PROPERTIES FIXTURES_CLEANUP servers LABELS integration
                     TIMEOUT 60)

file(GLOB RU_INTEG_TESTS ${CMAKE_CURRENT_SOURCE_DIR}/tests/integ/test_*.c)
foreach(src ${RU_INTEG_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src} tests/integ/harness.c tests/integ/e2e.c)
  target_include_directories(${name} PRIVATE tests/integ)
  target_link_libraries(${name} PRIVATE rollupd_core PkgConfig::CRITERION)
  add_test(NAME integ_${name} COMMAND ${name} --jobs 1)
  set_tests_properties(integ_${name} PROPERTIES
    LABELS integration FIXTURES_REQUIRED servers TIMEOUT 900
    ENVIRONMENT "RU_TESTENV=${RU_TESTENV_DIR}/env;RU_BUILD_DIR=${CMAKE_BINARY_DIR};RU_SOURCE_DIR=${CMAKE_CURRENT_SOURCE_DIR}")
endforeach()

# The unit files: systemd-analyze verify and security (exposure must stay <= 1.0).
add_test(NAME units COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tests/integ/test_units.sh
         ${CMAKE_BINARY_DIR})
set_tests_properties(units PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 120)
