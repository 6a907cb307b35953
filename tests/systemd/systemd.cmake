# tests/systemd: rollupd under a real systemd 252 booted as PID 1 in namespaces, doing
# what an operator does, from an install with `cmake --install --prefix /usr` and from the
# Debian package (label "systemd"; skipped, exit 77, where this machine cannot boot
# systemd). systemd_deb builds the package with scripts/deb (lintian errors fail it) for
# systemd_boot to install. Not in a sanitizer build: the test installs the build's
# binaries under the unit's sandbox, and one run of the operator's steps is enough.
if(NOT RU_SANITIZE)
  add_test(NAME systemd_deb COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/scripts/deb
           ${CMAKE_BINARY_DIR}/deb)
  set_tests_properties(systemd_deb PROPERTIES LABELS systemd FIXTURES_SETUP deb TIMEOUT 900)
  add_test(NAME systemd_boot COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tests/systemd/test_systemd.sh
           ${CMAKE_BINARY_DIR})
  set_tests_properties(systemd_boot PROPERTIES LABELS systemd FIXTURES_REQUIRED deb
                       SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()
