/* failpoint.c - see failpoint.h. */
#include "core/failpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void failpoint(const char *name)
{
    static const char *armed;
    static int read_env;
    if (!read_env) {
        armed = getenv("LAMBDAD_FAILPOINT");   /* races are benign: same value */
        read_env = 1;
    }
    if (armed && strcmp(armed, name) == 0) {
        static const char msg[] = "lambdad: failpoint reached, SIGKILL\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        kill(getpid(), SIGKILL);
    }
}

void failpoint_pause(const char *name)
{
    static int used;
    const char *armed = getenv("LAMBDAD_PAUSEPOINT");
    size_t n = strlen(name);
    if (used || !armed || strncmp(armed, name, n) != 0 || armed[n] != ':')
        return;
    used = 1;
    const char *release = armed + n + 1;
    char reached[4096];
    snprintf(reached, sizeof(reached), "%s.reached", release);
    int fd = open(reached, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    /* A test-only wait, so a plain poll of the file is enough. */
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
    while (access(release, F_OK) != 0)
        nanosleep(&tick, NULL);
}
