# Run at build time (cmake -P): writes OUT from IN with the git revision of SRC, rewriting OUT
# only when its text changes, so a build after a commit relinks with the new revision and a build
# without one recompiles nothing. Outside a git checkout (a release tarball) the revision is
# "unknown".
execute_process(COMMAND git -C "${SRC}" rev-parse --short=12 HEAD
                OUTPUT_VARIABLE ROAM_GIT_REVISION OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE rc ERROR_QUIET)
if(NOT rc EQUAL 0 OR ROAM_GIT_REVISION STREQUAL "")
  set(ROAM_GIT_REVISION "unknown")
else()
  execute_process(COMMAND git -C "${SRC}" diff --quiet HEAD -- RESULT_VARIABLE dirty ERROR_QUIET)
  if(NOT dirty EQUAL 0)
    string(APPEND ROAM_GIT_REVISION "-dirty")
  endif()
endif()
configure_file("${IN}" "${OUT}" @ONLY)
