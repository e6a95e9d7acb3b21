/*
 * harness.c - runs vmw_balloon.c, compiled as it is, inside the checker's process.
 *
 * The driver source (with only its VMWARE_BALLOON_CMD macro rewritten, see
 * harness/build.py) is included below, so the harness sees `balloon` and the
 * driver's static functions.  The whole is built as a shared library that
 * harness/process.py loads with ctypes (in a forked child per scenario); every
 * environment call the driver makes is a direct call of a function pointer the
 * Python side installed with harness_setup():
 *
 *   alloc(order, gfp, &pfn)      -> 1 and the pfn, 0: NULL   (alloc_pages)
 *   release(order, pfn)                                      (__free_pages)
 *   hv(cmd, arg1, arg2, n, entries, out)                     (the backdoor; out[0] status,
 *                                                             out[1] result, out[2] m,
 *                                                             out[3..] the m entry statuses)
 *   vmci_create()                -> resource, or -1          (vmci_doorbell_create)
 *   vmci_destroy(), warn()
 *
 * Between two environment calls the Python side can read the driver's state:
 * harness_snapshot() (the fields of struct vmballoon and its statistics) and
 * harness_list() (a page list, or the pages in flight), harness_list_delta() (what a
 * page list changed since it was last read).  To tell where each page
 * is, the harness wraps the driver's list_add and list_del (kshim.h does the
 * checks): a page taken off a balloon list or a refused list, or handed out by the
 * allocator, and neither listed again nor freed, is "in flight".
 *
 * A fault of the driver ends the entry point: list_add of a NULL or listed page and
 * __free_pages(NULL) call shim_crash(); a read or write through NULL is a SIGSEGV
 * that the handler turns into a null_deref.  Both record the program counter of
 * the driver's code (harness_crash_pc), which the Python side maps to a line of the
 * driver with addr2line (the library is built with -g).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include "kshim.h"

/* ---- struct page for every frame, with where the harness saw it go ------------------------ */
enum where { ON_NONE, ON_PAGES4K, ON_PAGES2M, ON_REFUSED4K, ON_REFUSED2M, ON_OTHER };
enum flight { FL_NONE, FL_ALLOCATED, FL_TAKEN, FL_UNREFUSED };

struct hpage {
	struct page page; /* first: the driver only ever sees &hpage->page */
	int on;		  /* enum where */
	int flight;	  /* enum flight */
	int is_2m;	  /* allocated at order 9, or taken off a 2 MiB list */
	long slot;	  /* index in in_flight[], -1 when not in flight */
	unsigned long stamp; /* list_epoch when it was last added to a list */
};

static struct list_head *list_heads[4]; /* the lists of enum where 1..4, set at setup */
static unsigned long list_version;	/* bumped by every list change */
/*
 * What harness_list_delta() needs to report a list without walking what it reported
 * before: the driver changes its lists at their heads (list_add to the head; list_del
 * of the first entry while it walks a list, lines 570-571, 765-766, 945-953).
 * An entry added since a list's last report has a stamp above that report's epoch; a
 * reported entry deleted from the head is counted.  Any other change (an entry added
 * after another, deleted from the middle, a list re-initialised) makes the next report
 * walk the whole list and report it whole.
 */
static unsigned long list_epoch;	/* bumped by every list_add */
static unsigned long reported_epoch[4]; /* list_epoch at each list's last report */
static size_t n_reported[4];		/* entries in each list's last report */
static size_t gone_reported[4];		/* reported entries since deleted from the head */
static int rewalk[4];			/* a change elsewhere than the head: report whole */

static void rewalk_all(void) /* a change whose list the harness cannot tell */
{
	rewalk[0] = rewalk[1] = rewalk[2] = rewalk[3] = 1;
}
static struct hpage **in_flight;
static size_t n_in_flight, cap_in_flight;
static unsigned long *taken_log; /* PFNs taken off a balloon list since harness_clear_taken */
static size_t n_taken_log, cap_taken_log;

static void die(const char *what) __attribute__((noreturn));
static void die(const char *what)
{
	fprintf(stderr, "harness: %s\n", what);
	exit(3);
}

static struct hpage *hpage_of(struct list_head *lru)
{
	return (struct hpage *)container_of(lru, struct page, lru);
}

static u64 *flight_log; /* (pfn, flight << 4 | is_2m) of every change, once asked for */
static size_t n_flight_log, cap_flight_log;
static int flight_logging;

static void set_flight(struct hpage *h, int flight)
{
	if (flight_logging && (h->slot >= 0 || flight != FL_NONE)) {
		if (n_flight_log + 2 > cap_flight_log) {
			cap_flight_log = cap_flight_log ? 2 * cap_flight_log : 1024;
			flight_log = realloc(flight_log, cap_flight_log * sizeof(*flight_log));
			if (!flight_log)
				die("out of memory");
		}
		flight_log[n_flight_log++] = h->page.pfn;
		flight_log[n_flight_log++] = ((u64)flight << 4) | (u64)h->is_2m;
	}
	if (h->slot >= 0 && flight == FL_NONE) {
		struct hpage *last = in_flight[--n_in_flight];

		in_flight[h->slot] = last;
		last->slot = h->slot;
		h->slot = -1;
	} else if (h->slot < 0 && flight != FL_NONE) {
		if (n_in_flight == cap_in_flight) {
			cap_in_flight = cap_in_flight ? 2 * cap_in_flight : 1024;
			in_flight = realloc(in_flight, cap_in_flight * sizeof(*in_flight));
			if (!in_flight)
				die("out of memory");
		}
		h->slot = (long)n_in_flight;
		in_flight[n_in_flight++] = h;
	}
	h->flight = flight;
}

static int where_of(struct list_head *head)
{
	int i;

	for (i = 0; i < 4; i++)
		if (list_heads[i] == head)
			return i + 1;
	return ON_OTHER;
}

/* kshim's list_add crashes on a NULL or listed page: the checks come first */
static inline __attribute__((always_inline)) void harness_list_add(struct list_head *new,
								   struct list_head *head)
{
	struct hpage *h;

	list_add(new, head);
	h = hpage_of(new);
	h->on = where_of(head);
	h->stamp = ++list_epoch;
	if (h->on == ON_OTHER) /* after an entry, of whichever list */
		rewalk_all();
	set_flight(h, FL_NONE);
	list_version++;
}

static inline __attribute__((always_inline)) void harness_list_del(struct list_head *entry)
{
	struct hpage *h = hpage_of(entry);
	int on = h->on;

	if (on >= ON_PAGES4K && on <= ON_REFUSED2M && entry->prev == list_heads[on - 1]) {
		if (h->stamp <= reported_epoch[on - 1])
			gone_reported[on - 1]++;
	} else {
		rewalk_all();
	}
	list_del(entry);
	h->on = ON_NONE;
	h->is_2m = on == ON_PAGES2M || on == ON_REFUSED2M;
	if (on == ON_PAGES4K || on == ON_PAGES2M) {
		set_flight(h, FL_TAKEN);
		if (n_taken_log == cap_taken_log) {
			cap_taken_log = cap_taken_log ? 2 * cap_taken_log : 1024;
			taken_log = realloc(taken_log, cap_taken_log * sizeof(*taken_log));
			if (!taken_log)
				die("out of memory");
		}
		taken_log[n_taken_log++] = h->page.pfn;
	}
	else if (on == ON_REFUSED4K || on == ON_REFUSED2M)
		set_flight(h, FL_UNREFUSED);
	list_version++;
}

static inline __attribute__((always_inline)) void harness_init_list_head(struct list_head *list)
{
	INIT_LIST_HEAD(list);
	rewalk_all();
	list_version++;
}

#define list_add harness_list_add
#define list_del harness_list_del
#define INIT_LIST_HEAD harness_init_list_head

#include "vmw_balloon.c"

#undef list_add
#undef list_del

/* ---- the environment: function pointers installed by the Python side -------------------- */
typedef int (*alloc_fn)(unsigned int order, int gfp, unsigned long *pfn);
typedef void (*release_fn)(unsigned int order, unsigned long pfn);
typedef void (*hv_fn)(unsigned long cmd, unsigned long arg1, unsigned long arg2,
		      unsigned long n, const u64 *entries, u64 *out);
typedef long (*vmci_create_fn)(void);
typedef void (*notify_fn)(void);

static alloc_fn env_alloc;
static release_fn env_release;
static hv_fn env_hv;
static vmci_create_fn env_vmci_create;
static notify_fn env_vmci_destroy;
static notify_fn env_warn;

static sigjmp_buf crash_jmp;
static unsigned long totalram;
static int send_batch;
static int crashed;
static vmci_callback doorbell_cb;
static void *doorbell_data;
struct workqueue_struct *system_freezable_wq;

/* what the last crash was: kind, PFN and the program counter in the driver's code */
const char *harness_crash_kind;
unsigned long harness_crash_pfn = SHIM_NULL_PFN;
unsigned long harness_crash_pc;

/* ---- struct page for every frame ------------------------------------------------------ */
static struct page **page_table;
static size_t page_buckets;
static size_t page_count;

static size_t page_hash(unsigned long pfn)
{
	u64 x = pfn * 0x9E3779B97F4A7C15ull;
	return (size_t)(x >> 20) & (page_buckets - 1);
}

static void page_table_grow(void)
{
	size_t old = page_buckets, i;
	struct page **old_table = page_table;

	page_buckets = old ? old * 2 : 1024;
	page_table = calloc(page_buckets, sizeof(*page_table));
	if (!page_table)
		die("out of memory");
	for (i = 0; i < old; i++) {
		struct page *p = old_table[i], *n;

		for (; p; p = n) {
			size_t h = page_hash(p->pfn);

			n = p->hash_next;
			p->hash_next = page_table[h];
			page_table[h] = p;
		}
	}
	free(old_table);
}

struct page *shim_pfn_to_page(unsigned long pfn)
{
	struct hpage *h;
	struct page *p;

	if (page_count >= page_buckets)
		page_table_grow();
	for (p = page_table[page_hash(pfn)]; p; p = p->hash_next)
		if (p->pfn == pfn)
			return p;
	h = calloc(1, sizeof(*h));
	if (!h)
		die("out of memory");
	h->slot = -1;
	p = &h->page;
	p->pfn = pfn;
	p->hash_next = page_table[page_hash(pfn)];
	page_table[page_hash(pfn)] = p;
	page_count++;
	return p;
}

/* ---- page allocator -------------------------------------------------------------------- */
enum gfp_code { GFP_NOSLEEP_CODE, GFP_CANSLEEP_CODE, GFP_KERNEL_CODE, GFP_OTHER_CODE };

static int gfp_code(gfp_t flags)
{
	if (flags == (__GFP_HIGHMEM | __GFP_NOWARN))
		return GFP_NOSLEEP_CODE;
	if (flags == GFP_HIGHUSER)
		return GFP_CANSLEEP_CODE;
	if (flags == (GFP_KERNEL | __GFP_ZERO))
		return GFP_KERNEL_CODE;
	return GFP_OTHER_CODE;
}

struct page *alloc_pages(gfp_t flags, unsigned int order)
{
	int code = gfp_code(flags);
	unsigned long pfn = 0;
	struct hpage *h;
	struct page *p;

	if (!env_alloc(order, code, &pfn))
		return NULL;
	p = shim_pfn_to_page(pfn);
	h = (struct hpage *)p;
	h->is_2m = order != 0;
	if (code != GFP_KERNEL_CODE)
		set_flight(h, FL_ALLOCATED);
	if ((flags & __GFP_ZERO) && p->virt)
		memset(p->virt, 0, PAGE_SIZE);
	return p;
}

void __free_pages(struct page *page, unsigned int order)
{
	if (!page)
		shim_crash("null_deref", SHIM_NULL_PFN);
	env_release(order, page->pfn);
	set_flight((struct hpage *)page, FL_NONE);
}

/* pages with a kernel mapping (the batch page): few, searched linearly */
static struct page **mapped;
static size_t n_mapped;

void *page_address(struct page *page)
{
	if (!page->virt) {
		page->virt = aligned_alloc(PAGE_SIZE, PAGE_SIZE);
		if (!page->virt)
			die("out of memory");
		memset(page->virt, 0, PAGE_SIZE);
		mapped = realloc(mapped, (n_mapped + 1) * sizeof(*mapped));
		if (!mapped)
			die("out of memory");
		mapped[n_mapped++] = page;
	}
	return page->virt;
}

struct page *virt_to_page(const void *addr)
{
	size_t i;

	if (!addr)
		return NULL;
	for (i = 0; i < n_mapped; i++)
		if ((const char *)addr >= (char *)mapped[i]->virt &&
		    (const char *)addr < (char *)mapped[i]->virt + PAGE_SIZE)
			return mapped[i];
	die("virt_to_page of an address that is not a page's");
}

void free_page(unsigned long addr)
{
	if (addr)
		__free_pages(virt_to_page((const void *)addr), 0);
}

void si_meminfo(struct sysinfo *info)
{
	info->totalram = totalram;
}

/* ---- VMCI ---------------------------------------------------------------------------- */
int vmci_doorbell_create(struct vmci_handle *handle, u32 flags, u32 priv_flags,
			 vmci_callback notify_cb, void *client_data)
{
	long resource;

	(void)flags;
	(void)priv_flags;
	resource = env_vmci_create();
	if (resource < 0)
		return VMCI_ERROR_NO_RESOURCES;
	handle->context = 0;
	handle->resource = (u32)resource;
	doorbell_cb = notify_cb;
	doorbell_data = client_data;
	return VMCI_SUCCESS;
}

int vmci_doorbell_destroy(struct vmci_handle handle)
{
	(void)handle;
	env_vmci_destroy();
	return VMCI_SUCCESS;
}

/* ---- debugfs: nobody reads the file ------------------------------------------------------ */
static struct dentry the_dentry;

struct dentry *debugfs_create_file(const char *name, unsigned short mode, struct dentry *parent,
				   void *data, const struct file_operations *fops)
{
	(void)name; (void)mode; (void)parent; (void)data; (void)fops;
	return &the_dentry;
}

void debugfs_remove(struct dentry *dentry)
{
	(void)dentry;
}

int single_open(struct file *file, int (*show)(struct seq_file *, void *), void *data)
{
	(void)file; (void)show; (void)data;
	return 0;
}

ssize_t seq_read(struct file *file, char *buf, size_t size, loff_t *ppos)
{
	(void)file; (void)buf; (void)size; (void)ppos;
	return 0;
}

loff_t seq_lseek(struct file *file, loff_t offset, int whence)
{
	(void)file; (void)whence;
	return offset;
}

int single_release(struct inode *inode, struct file *file)
{
	(void)inode; (void)file;
	return 0;
}

void seq_printf(struct seq_file *m, const char *fmt, ...)
{
	(void)m; (void)fmt;
}

/* ---- the hypervisor port ----------------------------------------------------------------- */
static int is_batched(unsigned long cmd)
{
	return cmd == VMW_BALLOON_CMD_BATCHED_LOCK || cmd == VMW_BALLOON_CMD_BATCHED_UNLOCK ||
	       cmd == VMW_BALLOON_CMD_BATCHED_2M_LOCK || cmd == VMW_BALLOON_CMD_BATCHED_2M_UNLOCK;
}

unsigned long shim_backdoor(unsigned long cmd, unsigned long arg1, unsigned long arg2,
			    unsigned long *result)
{
	static u64 out[3 + VMW_BALLOON_BATCH_MAX_PAGES];
	unsigned long m, i, n = 0;
	struct vmballoon_batch_page *batch = balloon.batch_page;

	if (send_batch && is_batched(cmd) && batch)
		n = arg2 < VMW_BALLOON_BATCH_MAX_PAGES ? arg2 : VMW_BALLOON_BATCH_MAX_PAGES;
	out[2] = 0;
	env_hv(cmd, arg1, arg2, n, batch ? batch->pages : NULL, out);
	*result = (unsigned long)out[1];
	m = (unsigned long)out[2];
	/* the host writes the status bits of the batch it was shown (scenario-format.md) */
	if (m && is_batched(cmd) && batch && arg1 == page_to_pfn(virt_to_page(batch))) {
		for (i = 0; i < m && i < VMW_BALLOON_BATCH_MAX_PAGES; i++) {
			if (i < arg2)
				batch->pages[i] = (batch->pages[i] & ~VMW_BALLOON_BATCH_STATUS_MASK) |
						  (out[3 + i] & VMW_BALLOON_BATCH_STATUS_MASK);
		}
	}
	return (unsigned long)out[0];
}

/* ---- faults -------------------------------------------------------------------------- */
void shim_warn(void)
{
	env_warn();
}

__attribute__((noinline)) void shim_crash(const char *kind, unsigned long pfn)
{
	harness_crash_kind = kind;
	harness_crash_pfn = pfn;
	harness_crash_pc = (unsigned long)__builtin_return_address(0) - 1;
	siglongjmp(crash_jmp, 1);
}

static int in_library(unsigned long pc)
{
	Dl_info at, ours;

	if (!pc || !dladdr((void *)pc, &at) || !dladdr((void *)shim_crash, &ours))
		return 0;
	return at.dli_fbase == ours.dli_fbase;
}

static void on_segv(int sig, siginfo_t *si, void *context)
{
	ucontext_t *uc = context;
	unsigned long pc = (unsigned long)uc->uc_mcontext.gregs[REG_RIP];
	unsigned long sp = (unsigned long)uc->uc_mcontext.gregs[REG_RSP];

	(void)sig;
	(void)si;
	/* a call through a NULL function pointer faults at address 0: name its caller */
	if (!in_library(pc) && sp)
		pc = *(unsigned long *)sp - 1;
	harness_crash_kind = "null_deref";
	harness_crash_pfn = SHIM_NULL_PFN;
	harness_crash_pc = pc;
	siglongjmp(crash_jmp, 1);
}

/* ---- reading the driver's state ------------------------------------------------------------ */
#define SNAP_FIELDS 20
#define SNAP_STATS 33

/* the fields of struct vmballoon, then struct vmballoon_stats in STATS_FIELDS order */
size_t harness_snapshot(u64 *out)
{
	struct vmballoon *b = &balloon;
	struct vmballoon_stats *s = &b->stats;
	u64 *st = out + SNAP_FIELDS;
	int i = 0;

	out[0] = b->size;
	out[1] = b->target;
	out[2] = b->rate_alloc;
	out[3] = b->slow_allocation_cycles;
	out[4] = b->reset_required;
	out[5] = b->capabilities;
	out[6] = b->supported_page_sizes;
	out[7] = b->batch_max_pages;
	out[8] = b->ops == &vmballoon_basic_ops ? 1 : b->ops == &vmballoon_batched_ops ? 2 :
		 b->ops ? 3 : 0;
	out[9] = b->page_sizes[0].n_refused_pages;
	out[10] = b->page_sizes[1].n_refused_pages;
	out[11] = b->batch_page ? page_to_pfn(virt_to_page(b->batch_page)) : SHIM_NULL_PFN;
	out[12] = b->page ? b->page->pfn : SHIM_NULL_PFN;
	out[13] = !vmci_handle_is_invalid(b->vmci_doorbell);
	out[14] = b->vmci_doorbell.context;
	out[15] = b->vmci_doorbell.resource;
	out[16] = (u64)crashed;
	out[17] = list_version;
	out[18] = n_in_flight;
	out[19] = 0;
	st[i++] = s->timer;
	st[i++] = s->doorbell;
	st[i++] = s->alloc[0]; st[i++] = s->alloc[1];
	st[i++] = s->alloc_fail[0]; st[i++] = s->alloc_fail[1];
	st[i++] = s->sleep_alloc;
	st[i++] = s->sleep_alloc_fail;
	st[i++] = s->refused_alloc[0]; st[i++] = s->refused_alloc[1];
	st[i++] = s->refused_free[0]; st[i++] = s->refused_free[1];
	st[i++] = s->free[0]; st[i++] = s->free[1];
	st[i++] = s->lock[0]; st[i++] = s->lock[1];
	st[i++] = s->lock_fail[0]; st[i++] = s->lock_fail[1];
	st[i++] = s->unlock[0]; st[i++] = s->unlock[1];
	st[i++] = s->unlock_fail[0]; st[i++] = s->unlock_fail[1];
	st[i++] = s->target;
	st[i++] = s->target_fail;
	st[i++] = s->start;
	st[i++] = s->start_fail;
	st[i++] = s->guest_type;
	st[i++] = s->guest_type_fail;
	st[i++] = s->doorbell_set;
	st[i++] = s->doorbell_unset;
	return SNAP_FIELDS + (size_t)i;
}

/*
 * List `which` (0: pages 4k, 1: pages 2m, 2: refused 4k, 3: refused 2m) head to tail,
 * (4) the pages in flight as pairs (pfn, flight << 4 | is_2m), or (5) the PFNs
 * taken off a balloon list since harness_clear_taken(); at most `cap` entries are
 * written, the length is returned.
 */
size_t harness_list(int which, u64 *out, size_t cap)
{
	struct list_head *head, *pos;
	size_t n = 0, i;

	if (which == 5) {
		for (i = 0; i < n_taken_log; i++)
			if (i < cap)
				out[i] = taken_log[i];
		return n_taken_log;
	}
	if (which == 4) {
		for (i = 0; i < n_in_flight; i++) {
			struct hpage *h = in_flight[i];

			if (n + 1 < cap) {
				out[n] = h->page.pfn;
				out[n + 1] = ((u64)h->flight << 4) | (u64)h->is_2m;
			}
			n += 2;
		}
		return n;
	}
	head = list_heads[which];
	for (pos = head->next; pos != head && pos; pos = pos->next) {
		if (n < cap)
			out[n] = container_of(pos, struct page, lru)->pfn;
		n++;
	}
	return n;
}

void harness_clear_taken(void)
{
	n_taken_log = 0;
}

/*
 * The changes of the pages in flight since the last call, oldest first, as pairs (pfn,
 * flight << 4 | is_2m) (flight FL_NONE: the page left in_flight[], the last entry
 * taking its slot); the first call starts the log and returns nothing.  Returns the
 * number of entries; when that exceeds cap nothing is written or forgotten (call again
 * with room).
 */
size_t harness_flight_log(u64 *out, size_t cap)
{
	size_t n = n_flight_log;

	if (!flight_logging) {
		flight_logging = 1;
		return 0;
	}
	if (n > cap)
		return n;
	memcpy(out, flight_log, n * sizeof(*out));
	n_flight_log = 0;
	return n;
}

/*
 * How list `which` (0..3, as harness_list) differs from what the last call reported:
 * out[0] the entries at the head of the last reported list that are gone, out[1] how
 * many entries now come before the tail the two share, out[2..] those entries head to
 * tail.  Returns 2 + out[1]; when that exceeds cap, nothing is written or remembered
 * (call again with room).  After a change elsewhere than the head (rewalk) the whole
 * last report is gone and the whole list is new.  which == -1 forgets every list: the
 * next call reports its list whole.
 */
size_t harness_list_delta(int which, u64 *out, size_t cap)
{
	struct list_head *head, *pos;
	size_t n = 0, i;

	if (which < 0) {
		for (i = 0; i < 4; i++) {
			n_reported[i] = 0;
			rewalk[i] = 1;
		}
		return 0;
	}
	head = list_heads[which];
	for (pos = head->next; pos != head && pos; pos = pos->next) {
		if (!rewalk[which] && hpage_of(pos)->stamp <= reported_epoch[which])
			break; /* the tail the last report ends with */
		if (2 + n < cap)
			out[2 + n] = container_of(pos, struct page, lru)->pfn;
		n++;
	}
	if (2 + n > cap)
		return 2 + n;
	out[0] = rewalk[which] ? n_reported[which] : gone_reported[which];
	out[1] = n;
	n_reported[which] = rewalk[which] ? n : n_reported[which] - gone_reported[which] + n;
	gone_reported[which] = 0;
	reported_epoch[which] = list_epoch;
	rewalk[which] = 0;
	return 2 + n;
}

/* the first len entries of the batch page as the driver wrote them (0 without one) */
size_t harness_batch(u64 *out, size_t len)
{
	size_t i;

	if (!balloon.batch_page)
		return 0;
	if (len > VMW_BALLOON_BATCH_MAX_PAGES)
		len = VMW_BALLOON_BATCH_MAX_PAGES;
	for (i = 0; i < len; i++)
		out[i] = balloon.batch_page->pages[i];
	return len;
}

/* ---- entry points ---------------------------------------------------------------------- */
void harness_setup(alloc_fn alloc, release_fn release, hv_fn hv, vmci_create_fn create,
		   notify_fn destroy, notify_fn warn, unsigned long ram, int with_batch)
{
	struct sigaction sa;
	int i;

	env_alloc = alloc;
	env_release = release;
	env_hv = hv;
	env_vmci_create = create;
	env_vmci_destroy = destroy;
	env_warn = warn;
	totalram = ram;
	send_batch = with_batch;
	for (i = 0; i < 2; i++) {
		list_heads[i] = &balloon.page_sizes[i].pages;
		list_heads[2 + i] = &balloon.page_sizes[i].refused_pages;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

/* 0: module init (vmballoon_init), 1: work, 2: doorbell, 3: exit; returns 1 once crashed */
int harness_run(int entry)
{
	if (crashed)
		return 1;
	if (sigsetjmp(crash_jmp, 1) != 0) {
		crashed = 1;
		return 1;
	}
	switch (entry) {
	case 0:
		if (vmballoon_init() != 0)
			die("vmballoon_init failed");
		break;
	case 1:
		balloon.dwork.work.func(&balloon.dwork.work);
		break;
	case 2:
		/* the host rang: the doorbell callback, then the work it queued */
		if (!vmci_handle_is_invalid(balloon.vmci_doorbell) && doorbell_cb) {
			doorbell_cb(doorbell_data);
			balloon.dwork.work.func(&balloon.dwork.work);
		}
		break;
	case 3:
		vmballoon_exit();
		break;
	default:
		die("unknown entry point");
	}
	return 0;
}

/* for a coverage build (-DHARNESS_COVERAGE): write the counters, since a forked child
 * ends with _exit and no exit handler runs */
#ifdef HARNESS_COVERAGE
extern void __gcov_dump(void);

int harness_dump_coverage(void)
{
	__gcov_dump();
	return 1;
}
#else
int harness_dump_coverage(void)
{
	return 0;
}
#endif
