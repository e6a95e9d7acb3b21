/* Userspace stand-in for <linux/types.h>: everything vmw_balloon.c uses is in kshim.h. */
#include "kshim.h"
