/* Userspace stand-in for <linux/io.h> (virt_to_phys): see kshim.h. */
#include "kshim.h"
