# bench/bench.cmake: the benchmark programs that bench/run drives. Each links the
# rollupd_core library (its hiredis/libpq/util) and nothing of the daemon's loop.
#
# The top-level CMakeLists.txt may include(bench/bench.cmake). Until it does, bench/run
# injects this file with -DCMAKE_PROJECT_rollupd_INCLUDE=.../bench/bench.cmake, which
# CMake reads right after project(): rollupd_core does not exist yet at that point, but
# target names in target_link_libraries are resolved at generate time, so the link is
# the same. Directory-wide flags set later in CMakeLists.txt do not reach targets made
# here, hence the explicit per-target standard, definition and warnings below.
include_guard(GLOBAL)

foreach(prog ceiling keygen upsert fresh replywalk)
  add_executable(rollupd-bench-${prog} ${CMAKE_CURRENT_LIST_DIR}/${prog}.c
                 ${CMAKE_CURRENT_LIST_DIR}/common.c)
  target_link_libraries(rollupd-bench-${prog} PRIVATE rollupd_core)
  target_compile_definitions(rollupd-bench-${prog} PRIVATE _GNU_SOURCE BENCH_PROG="${prog}")
  target_compile_options(rollupd-bench-${prog} PRIVATE -Wall -Wextra -Wshadow
                         -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter)
  set_target_properties(rollupd-bench-${prog} PROPERTIES
    C_STANDARD 11 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
endforeach()
