# tests/container: rollupd as a container runs it (label "container"). container_ns runs
# the entrypoint as PID 1 of new PID and mount namespaces on a read-only root, configured
# from the environment only (tests/container/test_ns.sh); container_image builds the
# Dockerfile with podman from a base made locally with debootstrap and runs the image the
# same way (tests/container/test_image.sh). Both skip (exit 77, with the reason) where
# this machine cannot run them. Not in a sanitizer build: one run is enough.
if(NOT RU_SANITIZE)
  add_test(NAME container_ns COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tests/container/test_ns.sh
           ${CMAKE_BINARY_DIR})
  add_test(NAME container_image
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tests/container/test_image.sh
           ${CMAKE_BINARY_DIR})
  set_tests_properties(container_ns container_image PROPERTIES
    LABELS container FIXTURES_REQUIRED servers SKIP_RETURN_CODE 77 TIMEOUT 900
    ENVIRONMENT "RU_TESTENV=${CMAKE_BINARY_DIR}/testenv/env")
endif()
