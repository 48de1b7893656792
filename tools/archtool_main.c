/* archtool_main.c - main() of lambdad-archive; everything else is in
 * archtool.c so the unit test runs the same code. */
#include <stdio.h>
#include <stdlib.h>

#include "tools/archtool.h"

int main(int argc, char **argv)
{
    /* dumps are millions of short lines: write them in large blocks */
    static char buf[1 << 16];
    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    int rc = archtool_main(argc, argv, stdout, stderr);
    if (fflush(stdout) != 0 && rc == 0)
        rc = 1;
    return rc;
}
