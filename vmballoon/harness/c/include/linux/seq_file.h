/* Userspace stand-in for <linux/seq_file.h>: everything vmw_balloon.c uses is in kshim.h. */
#include "kshim.h"
