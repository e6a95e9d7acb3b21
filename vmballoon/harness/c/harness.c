/*
 * harness.c - runs vmw_balloon.c, compiled as it is, in a userspace process.
 *
 * The driver source (with only its VMWARE_BALLOON_CMD macro rewritten, see
 * harness/build.py) is included below, so the harness sees `balloon` and the
 * driver's static functions.  Everything outside the driver is answered by the
 * Python environment (vmballoon.core.env.Env) over a line protocol on
 * stdin/stdout (harness/process.py):
 *
 *   harness -> python                         python -> harness
 *   H cmd arg1 arg2 target bp n e0..e(n-1)    status result m s0..s(m-1)
 *   A order gfp                               pfn | -
 *   C                                         resource | -
 *   F order pfn        D        W             (no answer)
 *   K kind pfn|-       (crash: the step ends)
 *   S {json}           (the driver's state)   R  (a step returned)
 *
 * Commands read from stdin: work, doorbell, exit, state.
 * (target: b->target before the command; bp: the batch page's PFN or -; e: the
 * batch entries, sent when argv asks for them.)
 * argv: totalram, and 1 when batched commands should carry the batch entries
 * (a host or a trace checker reads them).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kshim.h"

#include "vmw_balloon.c"

static FILE *out;
static sigjmp_buf crash_jmp;
static unsigned long totalram;
static int send_batch;
static vmci_callback doorbell_cb;
static void *doorbell_data;
struct workqueue_struct *system_freezable_wq;

static void die(const char *what) __attribute__((noreturn));
static void die(const char *what)
{
	fprintf(stderr, "harness: %s\n", what);
	exit(3);
}

static char *reply(char *buf, size_t size)
{
	fflush(out);
	if (!fgets(buf, (int)size, stdin))
		die("environment closed the pipe");
	return buf;
}

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
	struct page *p;

	if (page_count >= page_buckets)
		page_table_grow();
	for (p = page_table[page_hash(pfn)]; p; p = p->hash_next)
		if (p->pfn == pfn)
			return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		die("out of memory");
	p->pfn = pfn;
	p->hash_next = page_table[page_hash(pfn)];
	page_table[page_hash(pfn)] = p;
	page_count++;
	return p;
}

/* ---- page allocator -------------------------------------------------------------------- */
static const char *gfp_name(gfp_t flags)
{
	if (flags == (__GFP_HIGHMEM | __GFP_NOWARN))
		return "nosleep";
	if (flags == GFP_HIGHUSER)
		return "cansleep";
	if (flags == (GFP_KERNEL | __GFP_ZERO))
		return "kernel";
	return "other";
}

struct page *alloc_pages(gfp_t flags, unsigned int order)
{
	char buf[64];
	struct page *p;

	fprintf(out, "A %u %s\n", order, gfp_name(flags));
	reply(buf, sizeof(buf));
	if (buf[0] == '-')
		return NULL;
	p = shim_pfn_to_page(strtoul(buf, NULL, 10));
	if ((flags & __GFP_ZERO) && p->virt)
		memset(p->virt, 0, PAGE_SIZE);
	return p;
}

void __free_pages(struct page *page, unsigned int order)
{
	if (!page)
		shim_crash("null_deref", SHIM_NULL_PFN);
	fprintf(out, "F %u %lu\n", order, page->pfn);
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
	char buf[64];

	(void)flags;
	(void)priv_flags;
	fputs("C\n", out);
	reply(buf, sizeof(buf));
	if (buf[0] == '-')
		return VMCI_ERROR_NO_RESOURCES;
	handle->context = 0;
	handle->resource = (u32)strtoul(buf, NULL, 10);
	doorbell_cb = notify_cb;
	doorbell_data = client_data;
	return VMCI_SUCCESS;
}

int vmci_doorbell_destroy(struct vmci_handle handle)
{
	(void)handle;
	fputs("D\n", out);
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

static void put_pfn(unsigned long pfn);

/* ---- the hypervisor port ----------------------------------------------------------------- */
static int is_batched(unsigned long cmd)
{
	return cmd == VMW_BALLOON_CMD_BATCHED_LOCK || cmd == VMW_BALLOON_CMD_BATCHED_UNLOCK ||
	       cmd == VMW_BALLOON_CMD_BATCHED_2M_LOCK || cmd == VMW_BALLOON_CMD_BATCHED_2M_UNLOCK;
}

unsigned long shim_backdoor(unsigned long cmd, unsigned long arg1, unsigned long arg2,
			    unsigned long *result)
{
	static char buf[16384];
	unsigned long status, m, i, n = 0;
	struct vmballoon_batch_page *batch = balloon.batch_page;
	char *s;

	if (send_batch && is_batched(cmd) && batch)
		n = arg2 < VMW_BALLOON_BATCH_MAX_PAGES ? arg2 : VMW_BALLOON_BATCH_MAX_PAGES;
	fprintf(out, "H %lu %lu %lu %u ", cmd, arg1, arg2, balloon.target);
	put_pfn(batch ? page_to_pfn(virt_to_page(batch)) : SHIM_NULL_PFN);
	fprintf(out, " %lu", n);
	for (i = 0; i < n; i++)
		fprintf(out, " %llu", (unsigned long long)batch->pages[i]);
	fputc('\n', out);
	s = reply(buf, sizeof(buf));
	status = strtoul(s, &s, 10);
	*result = strtoul(s, &s, 10);
	m = strtoul(s, &s, 10);
	/* the host writes the status bits of the batch it was shown (scenario-format.md) */
	if (m && is_batched(cmd) && batch && arg1 == page_to_pfn(virt_to_page(batch))) {
		for (i = 0; i < m; i++) {
			u64 st = strtoull(s, &s, 10);

			if (i < arg2 && i < VMW_BALLOON_BATCH_MAX_PAGES)
				batch->pages[i] = (batch->pages[i] & ~VMW_BALLOON_BATCH_STATUS_MASK) |
						  (st & VMW_BALLOON_BATCH_STATUS_MASK);
		}
	}
	return status;
}

/* ---- faults -------------------------------------------------------------------------- */
void shim_warn(void)
{
	fputs("W\n", out);
}

static void put_pfn(unsigned long pfn)
{
	if (pfn == SHIM_NULL_PFN)
		fputs("-", out);
	else
		fprintf(out, "%lu", pfn);
}

void shim_crash(const char *kind, unsigned long pfn)
{
	fprintf(out, "K %s ", kind);
	put_pfn(pfn);
	fputc('\n', out);
	siglongjmp(crash_jmp, 1);
}

static void on_segv(int sig)
{
	(void)sig;
	/* a read or write through NULL (ops, batch page): fault null_deref */
	fputs("K null_deref -\n", out);
	siglongjmp(crash_jmp, 1);
}

/* ---- the driver's state, as the contract's `final` object -------------------------------- */
static void put_list(struct list_head *head)
{
	struct list_head *pos;
	const char *sep = "";

	fputc('[', out);
	for (pos = head->next; pos != head; pos = pos->next) {
		fprintf(out, "%s%lu", sep, container_of(pos, struct page, lru)->pfn);
		sep = ",";
	}
	fputc(']', out);
}

static void put_pair(const char *name, const unsigned int *v, const char *sep)
{
	fprintf(out, "\"%s\":[%u,%u]%s", name, v[0], v[1], sep);
}

static void put_state(int crashed)
{
	struct vmballoon *b = &balloon;
	struct vmballoon_stats *s = &b->stats;
	const char *ops = b->ops == &vmballoon_basic_ops ? "\"basic\"" :
			  b->ops == &vmballoon_batched_ops ? "\"batched\"" :
			  b->ops ? "\"other\"" : "null";

	fprintf(out, "S {\"size\":%u,\"target\":%u,\"rate_alloc\":%u,\"slow_allocation_cycles\":%u,"
		"\"reset_required\":%s,\"capabilities\":%lu,\"supported_page_sizes\":%u,"
		"\"batch_max_pages\":%u,\"ops\":%s,\"pages\":[",
		b->size, b->target, b->rate_alloc, b->slow_allocation_cycles,
		b->reset_required ? "true" : "false", b->capabilities, b->supported_page_sizes,
		b->batch_max_pages, ops);
	put_list(&b->page_sizes[0].pages);
	fputc(',', out);
	put_list(&b->page_sizes[1].pages);
	fputs("],\"refused\":[", out);
	put_list(&b->page_sizes[0].refused_pages);
	fputc(',', out);
	put_list(&b->page_sizes[1].refused_pages);
	fprintf(out, "],\"n_refused\":[%u,%u],\"batch_page\":", b->page_sizes[0].n_refused_pages,
		b->page_sizes[1].n_refused_pages);
	if (b->batch_page)
		put_pfn(page_to_pfn(virt_to_page(b->batch_page)));
	else
		fputs("null", out);
	fputs(",\"page\":", out);
	if (b->page)
		put_pfn(b->page->pfn);
	else
		fputs("null", out);
	fputs(",\"doorbell\":", out);
	if (vmci_handle_is_invalid(b->vmci_doorbell))
		fputs("null", out);
	else
		fprintf(out, "[%u,%u]", b->vmci_doorbell.context, b->vmci_doorbell.resource);
	fprintf(out, ",\"crashed\":%s,\"stats\":{\"timer\":%u,\"doorbell\":%u,",
		crashed ? "true" : "false", s->timer, s->doorbell);
	put_pair("alloc", s->alloc, ",");
	put_pair("alloc_fail", s->alloc_fail, ",");
	fprintf(out, "\"sleep_alloc\":%u,\"sleep_alloc_fail\":%u,", s->sleep_alloc,
		s->sleep_alloc_fail);
	put_pair("refused_alloc", s->refused_alloc, ",");
	put_pair("refused_free", s->refused_free, ",");
	put_pair("free", s->free, ",");
	put_pair("lock", s->lock, ",");
	put_pair("lock_fail", s->lock_fail, ",");
	put_pair("unlock", s->unlock, ",");
	put_pair("unlock_fail", s->unlock_fail, ",");
	fprintf(out, "\"target\":%u,\"target_fail\":%u,\"start\":%u,\"start_fail\":%u,"
		"\"guest_type\":%u,\"guest_type_fail\":%u,\"doorbell_set\":%u,"
		"\"doorbell_unset\":%u}}\n",
		s->target, s->target_fail, s->start, s->start_fail, s->guest_type,
		s->guest_type_fail, s->doorbell_set, s->doorbell_unset);
}

/* ---- entry points ---------------------------------------------------------------------- */
static void run_step(const char *name)
{
	if (!strcmp(name, "work")) {
		balloon.dwork.work.func(&balloon.dwork.work);
	} else if (!strcmp(name, "doorbell")) {
		/* the host rang: the doorbell callback, then the work it queued */
		if (!vmci_handle_is_invalid(balloon.vmci_doorbell) && doorbell_cb) {
			doorbell_cb(doorbell_data);
			balloon.dwork.work.func(&balloon.dwork.work);
		}
	} else if (!strcmp(name, "exit")) {
		vmballoon_exit();
	} else {
		die("unknown step");
	}
}

int main(int argc, char **argv)
{
	static char line[256];
	struct sigaction sa;
	volatile int crashed = 0;

	if (argc != 3)
		die("usage: harness TOTALRAM SEND_BATCH");
	totalram = strtoul(argv[1], NULL, 10);
	send_batch = atoi(argv[2]);
	out = stdout;
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_segv;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);

	if (sigsetjmp(crash_jmp, 1) == 0) {
		if (vmballoon_init() != 0)
			die("vmballoon_init failed");
	} else {
		crashed = 1;
	}
	fputs("R\n", out);
	fflush(out);

	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		if (!strcmp(line, "state")) {
			put_state(crashed);
		} else if (!crashed) {
			if (sigsetjmp(crash_jmp, 1) == 0)
				run_step(line);
			else
				crashed = 1;
		}
		fputs("R\n", out);
		fflush(out);
	}
	return 0;
}
