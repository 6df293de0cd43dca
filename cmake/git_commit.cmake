# Writes OUT, the C++ file that holds the git commit of SOURCE_DIR: its short
# hash, with "-dirty" when a tracked file differs from it, or "unknown" when
# there is no git or no repository (a source tarball). Run at every build by
# the lintrain_git_commit target (cmake -P); the file is rewritten only when
# the text changes, so an unchanged tree recompiles nothing.
#   cmake -DSOURCE_DIR=... -DGIT_EXECUTABLE=... -DOUT=... -P git_commit.cmake
set(commit "unknown")
if(GIT_EXECUTABLE)
  execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" rev-parse --short HEAD
                  OUTPUT_VARIABLE hash RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(rc EQUAL 0 AND NOT hash STREQUAL "")
    set(commit "${hash}")
    # --no-optional-locks: a build must not take the index lock from a git
    # command the user runs at the same time.
    execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" --no-optional-locks status --porcelain
                            --untracked-files=no
                    OUTPUT_VARIABLE changes RESULT_VARIABLE rc ERROR_QUIET)
    if(NOT rc EQUAL 0)
      string(APPEND commit "-unknown-state")
    elseif(NOT changes STREQUAL "")
      string(APPEND commit "-dirty")
    endif()
  endif()
endif()
set(text "// Generated at build time by cmake/git_commit.cmake; do not edit.
namespace lintrain {
const char* git_commit_of_build() { return \"${commit}\"; }
}  // namespace lintrain
")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
