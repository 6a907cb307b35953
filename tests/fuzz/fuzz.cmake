# Fuzz targets (libFuzzer): fuzz_event, fuzz_config and fuzz_resp. Included by the top-level
# CMakeLists.txt when RU_FUZZ is ON; see tests/fuzz/README.md.
#
# The core sources each target needs are compiled into it with the fuzzer flags (rather
# than linking rollupd_core, which is built without coverage instrumentation), so every
# line of src/ under test is instrumented for coverage, AddressSanitizer and UBSan.
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "RU_FUZZ needs clang (libFuzzer); configure with CC=clang "
                      "(compiler is ${CMAKE_C_COMPILER_ID})")
endif()

enable_testing()
set(RU_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
set(RU_FUZZ_FLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
                  -fno-omit-frame-pointer -g)
set(RU_FUZZ_TIME 30 CACHE STRING "Seconds each fuzz_*_short CTest test fuzzes")
option(RU_FUZZ_IGNORE_KNOWN
       "fuzz_*_short: go on past the findings listed in tests/fuzz/crashes/README.md" OFF)
option(RU_FUZZ_KEEP_CORPUS
       "fuzz_*_short: merge what a run learnt into tests/fuzz/corpus/<target>/" OFF)

# fuzz_<name>: tests/fuzz/fuzz_<name>.c + the listed src/ files
function(ru_add_fuzzer name)
  set(srcs ${RU_FUZZ_DIR}/fuzz_${name}.c)
  foreach(s ${ARGN})
    list(APPEND srcs ${PROJECT_SOURCE_DIR}/src/${s})
  endforeach()
  add_executable(fuzz_${name} ${srcs})
  target_include_directories(fuzz_${name} PRIVATE ${PROJECT_SOURCE_DIR}/include)
  target_compile_options(fuzz_${name} PRIVATE ${RU_FUZZ_FLAGS})
  target_link_options(fuzz_${name} PRIVATE ${RU_FUZZ_FLAGS})
  target_link_libraries(fuzz_${name} PRIVATE PkgConfig::DEPS m)

  # A short run for CI, on a copy of the seed corpus in the build tree (the repository's
  # corpus is never written); findings go to fuzz-findings/<name>/ in the build tree.
  add_test(NAME fuzz_${name}_short
           COMMAND ${CMAKE_COMMAND}
                   -DFUZZER=$<TARGET_FILE:fuzz_${name}>
                   -DSEEDS=${RU_FUZZ_DIR}/corpus/${name}
                   -DCORPUS=${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/${name}
                   -DFINDINGS=${CMAKE_CURRENT_BINARY_DIR}/fuzz-findings/${name}
                   -DDICT=${RU_FUZZ_DIR}/${name}.dict
                   -DSECONDS=${RU_FUZZ_TIME}
                   -DIGNORE_KNOWN=${RU_FUZZ_IGNORE_KNOWN}
                   -DKEEP=${RU_FUZZ_KEEP_CORPUS}
                   -P ${RU_FUZZ_DIR}/run_fuzz.cmake)
  math(EXPR timeout "${RU_FUZZ_TIME} + 300")
  set_tests_properties(fuzz_${name}_short PROPERTIES LABELS fuzz TIMEOUT ${timeout})
endfunction()

ru_add_fuzzer(event util.c utf8.c json.c jsonobj.c event.c pcache.c)
ru_add_fuzzer(config util.c utf8.c log.c json.c jsonobj.c cluster.c redisurl.c redact.c libcfg.c config.c cfgcheck.c cfgfile.c)
ru_add_fuzzer(resp util.c arena.c reply.c resp.c)
