# tests/tls: TLS to the databases (label "integration"). tls_postgres: a PostgreSQL that
# accepts only TLS, sslmode=verify-full with the test's CA, a wrong CA refused;
# tls_redis: a TLS-only redis-server reached through a stunnel sidecar.
foreach(t postgres redis)
  if(t STREQUAL "postgres")
    set(script test_pg_tls.sh)
  else()
    set(script test_redis_tls.sh)
  endif()
  add_test(NAME tls_${t} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tests/tls/${script}
           ${CMAKE_BINARY_DIR})
  set_tests_properties(tls_${t} PROPERTIES LABELS integration FIXTURES_REQUIRED servers
                       SKIP_RETURN_CODE 77 TIMEOUT 300
                       ENVIRONMENT "RU_TESTENV=${CMAKE_BINARY_DIR}/testenv/env")
endforeach()
