/*
 * kshim.h - the kernel API vmw_balloon.c uses, in userspace, for the harness.
 *
 * Every <linux/...> and <asm/...> header the driver includes resolves to this
 * file (harness/c/include/).  It follows the scenario contract
 * (scenario-format.md, "The environment's rules"):
 *
 *  - pages: one `struct page` per frame, created on first use and never freed,
 *    so `lru` tells whether a page is on a list; page_to_pfn(NULL) is 2**64-1;
 *  - page allocator, VMCI doorbells and the hypervisor port are answered by
 *    the harness's host (harness.c), which forwards them to the Python
 *    environment over a pipe;
 *  - list_add of a NULL page is fault null_deref, of a page already on a
 *    list fault list_corrupt; __free_pages(NULL) is null_deref; a read or a
 *    write through NULL (ops, batch page) is a real SIGSEGV the harness turns
 *    into null_deref;
 *  - WARN_ON_ONCE logs fault warn the first time per module load;
 *  - work queue, debugfs, printk and module macros do nothing observable;
 *  - the hypervisor is VMware, for both detection APIs: 4.14's
 *    `x86_hyper_type != X86_HYPER_VMWARE` and 4.9's `x86_hyper != &x86_hyper_vmware`;
 *  - a physical address has room for every PFN a scenario uses (up to 2**64-1),
 *    so PHYS_PFN(virt_to_phys(p)) == page_to_pfn(virt_to_page(p)) for every page
 *    (the batch page included; NULL gives the NULL PFN either way).  On x86-64
 *    phys_addr_t has 64 bits and no page has a PFN of 2**52 or more: the
 *    assumption pfn_below_2_52, within which the two expressions agree there too.
 *
 * Headers the driver includes and no include folder has (stable and vendor
 * trees add e.g. <asm-generic/hypervisor.h>) are generated empty by
 * harness/build.py; give others with --include DIR.
 */
#ifndef VMBALLOON_KSHIM_H
#define VMBALLOON_KSHIM_H

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- types ------------------------------------------------------------------------- */
typedef uint64_t u64;
typedef uint32_t u32;
typedef uint16_t u16;
typedef uint8_t u8;
typedef unsigned int gfp_t;
typedef unsigned __int128 phys_addr_t; /* wider than the kernel's: see the top comment */

/* the kernel configuration: debugfs statistics are compiled in */
#define CONFIG_DEBUG_FS 1

#define __init
#define __exit
#define __read_mostly
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define KBUILD_MODNAME "vmw_balloon"

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define min(a, b) ({ __typeof__(a) _min_a = (a); __typeof__(b) _min_b = (b); \
		     _min_a < _min_b ? _min_a : _min_b; })
#define max(a, b) ({ __typeof__(a) _max_a = (a); __typeof__(b) _max_b = (b); \
		     _max_a > _max_b ? _max_a : _max_b; })

/* ---- printk: formats checked, nothing printed ---------------------------------------- */
static inline __attribute__((format(printf, 1, 2))) int no_printk(const char *fmt, ...)
{
	(void)fmt;
	return 0;
}
#define pr_debug(fmt, ...) no_printk(fmt, ##__VA_ARGS__)
#define pr_err(fmt, ...) no_printk(fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) no_printk(fmt, ##__VA_ARGS__)
#define pr_notice(fmt, ...) no_printk(fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...) no_printk(fmt, ##__VA_ARGS__)

/* ---- module ------------------------------------------------------------------------- */
#define MODULE_AUTHOR(x) extern int vmballoon_shim_module_info
#define MODULE_DESCRIPTION(x) extern int vmballoon_shim_module_info
#define MODULE_VERSION(x) extern int vmballoon_shim_module_info
#define MODULE_ALIAS(x) extern int vmballoon_shim_module_info
#define MODULE_LICENSE(x) extern int vmballoon_shim_module_info
#define module_init(fn) extern int vmballoon_shim_module_info
#define module_exit(fn) extern int vmballoon_shim_module_info
/* the harness calls vmballoon_init itself, whichever initcall level registers it */
#define late_initcall(fn) extern int vmballoon_shim_module_info
#define device_initcall(fn) extern int vmballoon_shim_module_info
#define module_param(name, type, perm) extern int vmballoon_shim_module_info
#define MODULE_PARM_DESC(name, desc) extern int vmballoon_shim_module_info
#define THIS_MODULE NULL

/* ---- hypervisor detection: we always run on VMware ------------------------------------ */
/* 4.14 and later */
enum x86_hypervisor_type { X86_HYPER_NATIVE, X86_HYPER_VMWARE };
static const enum x86_hypervisor_type x86_hyper_type = X86_HYPER_VMWARE;
/* 4.9 (arch/x86/include/asm/hypervisor.h of 4.9.y) */
struct hypervisor_x86 {
	const char *name;
};
static const struct hypervisor_x86 x86_hyper_vmware = { .name = "VMware" };
static const struct hypervisor_x86 *const x86_hyper = &x86_hyper_vmware;

/* ---- faults (harness.c) -------------------------------------------------------------- */
#define SHIM_NULL_PFN (~0UL)
void shim_crash(const char *kind, unsigned long pfn) __attribute__((noreturn));
void shim_warn(void);

#define WARN_ON_ONCE(condition) ({					\
	static bool __warned;						\
	bool __ret_warn_once = !!(condition);				\
	if (__ret_warn_once && !__warned) {				\
		__warned = true;					\
		shim_warn();						\
	}								\
	__ret_warn_once;						\
})

/* ---- lists (include/linux/list.h); an entry on no list has next == NULL ---------------- */
struct list_head {
	struct list_head *next, *prev;
};

struct page {
	struct list_head lru; /* first: &NULL->lru is NULL */
	unsigned long pfn;
	void *virt; /* page_address(), allocated on first use */
	struct page *hash_next;
};

static inline void INIT_LIST_HEAD(struct list_head *list)
{
	list->next = list;
	list->prev = list;
}

static inline void list_add(struct list_head *new, struct list_head *head)
{
	if (new == NULL)
		shim_crash("null_deref", SHIM_NULL_PFN);
	if (new->next != NULL) /* CONFIG_DEBUG_LIST: already on a list */
		shim_crash("list_corrupt", container_of(new, struct page, lru)->pfn);
	new->next = head->next;
	new->prev = head;
	head->next->prev = new;
	head->next = new;
}

static inline void list_del(struct list_head *entry)
{
	entry->next->prev = entry->prev;
	entry->prev->next = entry->next;
	entry->next = NULL;
	entry->prev = NULL;
}

#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_first_entry(ptr, type, member) list_entry((ptr)->next, type, member)
#define list_next_entry(pos, member) list_entry((pos)->member.next, __typeof__(*(pos)), member)
#define list_for_each_entry_safe(pos, n, head, member)			\
	for (pos = list_first_entry(head, __typeof__(*pos), member),	\
		n = list_next_entry(pos, member);			\
	     &pos->member != (head);					\
	     pos = n, n = list_next_entry(n, member))

/* ---- pages and the allocator (harness.c) ---------------------------------------------- */
#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)

#define __GFP_HIGHMEM 0x01u
#define __GFP_NOWARN 0x02u
#define __GFP_ZERO 0x04u
#define GFP_KERNEL 0x10u
#define GFP_HIGHUSER 0x20u

struct page *shim_pfn_to_page(unsigned long pfn);
struct page *alloc_pages(gfp_t flags, unsigned int order);
void __free_pages(struct page *page, unsigned int order);
void *page_address(struct page *page);
struct page *virt_to_page(const void *addr);
void free_page(unsigned long addr);

#define alloc_page(flags) alloc_pages(flags, 0)
#define __free_page(page) __free_pages(page, 0)
#define pfn_to_page(pfn) shim_pfn_to_page(pfn)

static inline unsigned long page_to_pfn(const struct page *page)
{
	return page ? page->pfn : SHIM_NULL_PFN;
}

/* linux/io.h and linux/pfn.h: exact for every page (see the top comment) */
static inline phys_addr_t virt_to_phys(const void *addr)
{
	return ((phys_addr_t)page_to_pfn(virt_to_page(addr)) << PAGE_SHIFT) |
	       ((uintptr_t)addr & (PAGE_SIZE - 1));
}
#define PHYS_PFN(x) ((unsigned long)((x) >> PAGE_SHIFT))

struct sysinfo {
	unsigned long totalram;
};
void si_meminfo(struct sysinfo *info);

static inline void cond_resched(void)
{
}

/* ---- work queue: the harness runs the work function itself ----------------------------- */
struct work_struct;
typedef void (*work_func_t)(struct work_struct *work);
struct work_struct {
	work_func_t func;
};
struct delayed_work {
	struct work_struct work;
};
struct workqueue_struct {
	int unused;
};
extern struct workqueue_struct *system_freezable_wq;
#define HZ 250
#define INIT_DELAYED_WORK(dw, fn) ((dw)->work.func = (fn))
#define to_delayed_work(w) container_of(w, struct delayed_work, work)
static inline unsigned long round_jiffies_relative(unsigned long j)
{
	return j;
}
static inline bool queue_delayed_work(struct workqueue_struct *wq, struct delayed_work *dw,
				      unsigned long delay)
{
	(void)wq; (void)dw; (void)delay;
	return true;
}
static inline bool mod_delayed_work(struct workqueue_struct *wq, struct delayed_work *dw,
				    unsigned long delay)
{
	(void)wq; (void)dw; (void)delay;
	return true;
}
static inline bool cancel_delayed_work_sync(struct delayed_work *dw)
{
	(void)dw;
	return false;
}

/* ---- debugfs and seq_file: a file nobody reads ---------------------------------------- */
struct inode {
	void *i_private;
};
struct file {
	void *private_data;
};
struct seq_file {
	void *private;
};
struct dentry {
	int unused;
};
struct file_operations {
	void *owner;
	int (*open)(struct inode *, struct file *);
	ssize_t (*read)(struct file *, char *, size_t, loff_t *);
	loff_t (*llseek)(struct file *, loff_t, int);
	int (*release)(struct inode *, struct file *);
};
#define S_IRUGO 0444
#define IS_ERR(ptr) ((unsigned long)(ptr) >= (unsigned long)-4095)
#define PTR_ERR(ptr) ((long)(ptr))
struct dentry *debugfs_create_file(const char *name, unsigned short mode, struct dentry *parent,
				   void *data, const struct file_operations *fops);
void debugfs_remove(struct dentry *dentry);
int single_open(struct file *file, int (*show)(struct seq_file *, void *), void *data);
ssize_t seq_read(struct file *file, char *buf, size_t size, loff_t *ppos);
loff_t seq_lseek(struct file *file, loff_t offset, int whence);
int single_release(struct inode *inode, struct file *file);
__attribute__((format(printf, 2, 3))) void seq_printf(struct seq_file *m, const char *fmt, ...);

/* ---- VMCI doorbells (harness.c) ------------------------------------------------------ */
struct vmci_handle {
	u32 context;
	u32 resource;
};
#define VMCI_INVALID_ID 0xFFFFFFFFu
static const struct vmci_handle VMCI_INVALID_HANDLE = {
	.context = VMCI_INVALID_ID,
	.resource = VMCI_INVALID_ID,
};
#define VMCI_SUCCESS 0
#define VMCI_ERROR_NO_RESOURCES (-6)
#define VMCI_FLAG_DELAYED_CB 0x01
#define VMCI_PRIVILEGE_FLAG_RESTRICTED 0x01
typedef void (*vmci_callback)(void *client_data);

static inline bool vmci_handle_is_invalid(struct vmci_handle h)
{
	return h.context == VMCI_INVALID_ID && h.resource == VMCI_INVALID_ID;
}
int vmci_doorbell_create(struct vmci_handle *handle, u32 flags, u32 priv_flags,
			 vmci_callback notify_cb, void *client_data);
int vmci_doorbell_destroy(struct vmci_handle handle);

/* ---- the hypervisor port: VMWARE_BALLOON_CMD (lines 200-219) is rewritten at build time
 * into a call of this function; it returns the status and stores the result register. --- */
unsigned long shim_backdoor(unsigned long cmd, unsigned long arg1, unsigned long arg2,
			    unsigned long *result);

#endif /* VMBALLOON_KSHIM_H */
