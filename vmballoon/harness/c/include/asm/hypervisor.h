/* Userspace stand-in for <asm/hypervisor.h>: see kshim.h. */
#include "kshim.h"
