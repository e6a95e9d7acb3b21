/* Userspace stand-in for <linux/vmalloc.h>: everything vmw_balloon.c uses is in kshim.h. */
#include "kshim.h"
