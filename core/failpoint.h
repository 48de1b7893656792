/* failpoint.h - crash on purpose at a named point, for tests.
 *
 * With LAMBDAD_FAILPOINT=<name> in the environment, failpoint("<name>")
 * kills the process with SIGKILL (as a power cut or kill -9 would) the
 * first time it is reached. Tests use it to crash at the exact steps of
 * the exactness protocol: between an archive COMMIT and applying it,
 * between writing batch views and swapping them. Without the variable it
 * costs one comparison. Any thread.
 */
#pragma once

void failpoint(const char *name);
