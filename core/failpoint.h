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

/* With LAMBDAD_PAUSEPOINT=<name>:<path> in the environment, the first
 * failpoint_pause("<name>") creates <path>.reached and waits until <path>
 * exists: a test holds the daemon at a step (a reload's gap) for as long
 * as it checks what clients see there, then lets it go on. */
void failpoint_pause(const char *name);
