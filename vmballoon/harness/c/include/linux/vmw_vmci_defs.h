/* Userspace stand-in for <linux/vmw_vmci_defs.h>: everything vmw_balloon.c uses is in kshim.h. */
#include "kshim.h"
