/* Userspace stand-in for <linux/vmw_vmci_api.h>: everything vmw_balloon.c uses is in kshim.h. */
#include "kshim.h"
