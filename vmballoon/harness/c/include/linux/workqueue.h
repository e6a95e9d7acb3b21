/* Userspace stand-in for <linux/workqueue.h>: everything vmw_balloon.c uses is in kshim.h. */
#include "kshim.h"
