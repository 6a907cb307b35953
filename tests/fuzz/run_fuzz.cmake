# Runs one fuzzer for a fixed time (the fuzz_*_short CTest tests, see fuzz.cmake):
#   cmake -DFUZZER=... -DSEEDS=... -DCORPUS=... -DFINDINGS=... -DDICT=... -DSECONDS=...
#         [-DIGNORE_KNOWN=ON] [-DKEEP=ON] -P run_fuzz.cmake
# The seeds are copied into CORPUS (kept between runs, so it grows) and the fuzzer works
# there; crash/leak/timeout/oom inputs are written to FINDINGS. Fails on any finding.
# IGNORE_KNOWN sets RU_FUZZ_IGNORE_KNOWN=1 (tests/fuzz/crashes/README.md).
# KEEP: after a clean run, the inputs of CORPUS that reach code the seeds do not are
# merged into SEEDS (libFuzzer's -merge=1), so what a run learnt stays in the tree.
foreach(v FUZZER SEEDS CORPUS FINDINGS DICT SECONDS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_fuzz.cmake: -D${v}=... is required")
  endif()
endforeach()

file(MAKE_DIRECTORY ${CORPUS} ${FINDINGS})
file(GLOB seeds ${SEEDS}/*)
file(COPY ${seeds} DESTINATION ${CORPUS})
file(GLOB before ${FINDINGS}/*)
if(IGNORE_KNOWN)
  set(ENV{RU_FUZZ_IGNORE_KNOWN} 1)
endif()

execute_process(
  COMMAND ${FUZZER} -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048
          -dict=${DICT} -artifact_prefix=${FINDINGS}/ -print_final_stats=1 ${CORPUS}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found ${FINDINGS}/*)
  if(before)
    list(REMOVE_ITEM found ${before})
  endif()
  string(REPLACE ";" " " found "${found}")
  message(FATAL_ERROR "${FUZZER} failed (exit ${rc}); reproduce with: ${FUZZER} ${found}")
endif()
if(KEEP)
  file(GLOB seeds_before ${SEEDS}/*)
  execute_process(
    COMMAND ${FUZZER} -merge=1 -timeout=10 -rss_limit_mb=2048 ${SEEDS} ${CORPUS}
    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${FUZZER} -merge=1 into ${SEEDS} failed (exit ${rc})")
  endif()
  file(GLOB seeds_after ${SEEDS}/*)
  list(LENGTH seeds_before nb)
  list(LENGTH seeds_after na)
  math(EXPR added "${na} - ${nb}")
  message(STATUS "${SEEDS}: ${added} new inputs merged (commit them to keep them)")
endif()
