# monitoring: the alert rules pass promtool check/test rules, and every metric the rules
# and the Grafana dashboard name is one a live rollupd exports (label "integration").
add_test(NAME monitoring COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/monitoring/test_monitoring.sh
         ${CMAKE_BINARY_DIR})
set_tests_properties(monitoring PROPERTIES LABELS integration FIXTURES_REQUIRED servers
                     TIMEOUT 300 ENVIRONMENT "RU_TESTENV=${CMAKE_BINARY_DIR}/testenv/env")
