/*
 * iomemfuzz-helper: runs a Program's userspace lines inside a QEMU guest.
 *
 * Built statically by `iomemfuzz confirm` (fuzz/confirm/guest.py) and started by the
 * guest's /init on the command serial port. It reads one command per line and answers
 * with zero or more "| text" lines and one final line:
 *
 *     = ok [VALUE...]      the call succeeded (values in hex unless said otherwise)
 *     = err ERRNO          the call failed with this errno (decimal, Linux numbering)
 *     = sig SIGNAME        the access raised SIGBUS or SIGSEGV
 *
 * It keeps the files and mappings a Program creates in two tables, so the host refers to
 * them by index. Accesses run under sigsetjmp so a SIGBUS from a revoked mapping is an
 * answer, not a crash.
 *
 * Commands (numbers in C syntax: 0x.. hex or decimal):
 *   open PATH rw|ro|wo          -> = ok FD
 *   close FD
 *   mmap FD OFFSET LENGTH shared|private rw|ro   -> = ok MAPPING
 *   munmap MAPPING
 *   touch MAPPING OFFSET r|w    -> = ok VALUE (a 32-bit load when aligned, else a byte)
 *   pmem MAPPING OFFSET r|w     -> the same access through /proc/self/mem
 *   pread FD OFFSET COUNT       -> = ok RETURNED FIRST-BYTES (pread(2): no position change)
 *   pwrite FD OFFSET COUNT      (pwrite(2) of what a pread at the offset returned)
 *   lseek FD OFFSET set|cur|end -> = ok POSITION
 *   ioctl FD mem|io|wc|uc       (the /proc/bus/pci PCIIOC_* requests)
 *   wr PATH TEXT                (one write(2) of TEXT: sysfs and debugfs files)
 *   echo PATH TEXT              (one write(2) of TEXT and a newline, as `echo TEXT > PATH`)
 *   ctl TEXT                    (the iomemfuzz_test module's debugfs control file: = ok
 *                                RESULT, after the lines the command printed as "| ")
 *   insmod PATH                 (finit_module(2) of a .ko file)
 *   rmmod NAME                  (delete_module(2), O_NONBLOCK, as rmmod does)
 *   readlink PATH               -> = ok NAME (the last component of the link's target)
 *   ls PATH                     (the directory's entries, sorted, as "| " lines)
 *   cat PATH                    (the file's lines as "| " lines)
 *   sh COMMAND                  (popen; output as "| " lines, then = ok STATUS)
 *   reset                       (unmap every mapping, close every file: between Programs)
 *   quit
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define PCIIOC_BASE (('P' << 24) | ('C' << 16) | ('I' << 8))
#define PCIIOC_MMAP_IS_IO (PCIIOC_BASE | 0x01)
#define PCIIOC_MMAP_IS_MEM (PCIIOC_BASE | 0x02)
#define PCIIOC_WRITE_COMBINE (PCIIOC_BASE | 0x03)

#define CTL_PATH "/sys/kernel/debug/iomemfuzz/ctl"
#define MAX_MAPS 256

struct mapping {
	volatile uint8_t *addr;
	size_t len;
};

static struct mapping maps[MAX_MAPS];
static int nmaps;
static sigjmp_buf fault_jmp;
static volatile sig_atomic_t fault_sig;

static void on_fault(int sig)
{
	fault_sig = sig;
	siglongjmp(fault_jmp, 1);
}

static unsigned long long num(const char *s)
{
	return s ? strtoull(s, NULL, 0) : 0;
}

static void reply_err(int err)
{
	printf("= err %d\n", err);
}

static struct mapping *mapping_of(const char *s)
{
	long i = s ? strtol(s, NULL, 0) : -1;

	if (i < 0 || i >= nmaps || maps[i].addr == NULL)
		return NULL;
	return &maps[i];
}

static void do_open(char *path, char *mode)
{
	int flags = O_RDWR;
	int fd;

	if (mode && !strcmp(mode, "ro"))
		flags = O_RDONLY;
	else if (mode && !strcmp(mode, "wo"))
		flags = O_WRONLY;
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		reply_err(errno);
	else
		printf("= ok %d\n", fd);
}

static void do_close(const char *fd)
{
	if (close((int)num(fd)) < 0)
		reply_err(errno);
	else
		printf("= ok\n");
}

static void do_mmap(char **a)
{
	int fd = (int)num(a[0]);
	off_t off = (off_t)num(a[1]);
	size_t len = (size_t)num(a[2]);
	int flags = (a[3] && !strcmp(a[3], "private")) ? MAP_PRIVATE : MAP_SHARED;
	int prot = (a[4] && !strcmp(a[4], "ro")) ? PROT_READ : PROT_READ | PROT_WRITE;
	void *p;

	if (nmaps >= MAX_MAPS) {
		reply_err(ENOMEM);
		return;
	}
	p = mmap(NULL, len, prot, flags, fd, off);
	if (p == MAP_FAILED) {
		reply_err(errno);
		return;
	}
	maps[nmaps].addr = p;
	maps[nmaps].len = len;
	printf("= ok %d\n", nmaps++);
}

static void do_munmap(char *which)
{
	struct mapping *m = mapping_of(which);

	if (!m) {
		reply_err(EBADF);
		return;
	}
	if (munmap((void *)m->addr, m->len) < 0) {
		reply_err(errno);
		return;
	}
	m->addr = NULL;
	printf("= ok\n");
}

/* A load or store through a mapping; SIGBUS/SIGSEGV are answers. */
static void do_touch(char **a)
{
	/* volatile: sigsetjmp returns a second time after a fault. */
	struct mapping *volatile m = mapping_of(a[0]);
	volatile size_t off = (size_t)num(a[1]);
	volatile int write = a[2] && a[2][0] == 'w';
	unsigned long value = 0;

	if (!m) {
		reply_err(EBADF);
		return;
	}
	fault_sig = 0;
	if (sigsetjmp(fault_jmp, 1) == 0) {
		volatile uint8_t *p = m->addr + off;

		if ((off & 3) == 0) {
			volatile uint32_t *w = (volatile uint32_t *)p;

			value = *w;
			if (write)
				*w = (uint32_t)value;
		} else {
			value = *p;
			if (write)
				*p = (uint8_t)value;
		}
		printf(write ? "= ok\n" : "= ok 0x%lx\n", value);
		return;
	}
	printf("= sig %s\n", fault_sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
}

/* The same access as a debugger makes it: /proc/self/mem reaches a VM_IO|VM_PFNMAP
 * mapping through the vma's ->access (generic_access_phys). */
static void do_pmem(char **a)
{
	struct mapping *m = mapping_of(a[0]);
	off_t where;
	uint32_t value = 0;
	ssize_t ret;
	int fd;

	if (!m) {
		reply_err(EBADF);
		return;
	}
	where = (off_t)(uintptr_t)(m->addr + num(a[1]));
	fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		reply_err(errno);
		return;
	}
	ret = pread(fd, &value, sizeof(value), where);
	if (ret >= 0 && a[2] && a[2][0] == 'w')
		ret = pwrite(fd, &value, sizeof(value), where);
	if (ret < 0)
		reply_err(errno);
	else
		printf("= ok 0x%x\n", value);
	close(fd);
}

static void do_pread(char **a, int write)
{
	int fd = (int)num(a[0]);
	off_t off = (off_t)num(a[1]);
	size_t count = (size_t)num(a[2]);
	unsigned char *buf = calloc(1, count + 8);
	ssize_t ret;
	size_t i;

	if (!buf) {
		reply_err(ENOMEM);
		return;
	}
	if (write) {
		/* Write back what is there, so a write changes no register or byte. */
		if (pread(fd, buf, count, off) < 0)
			memset(buf, 0, count);
	}
	ret = write ? pwrite(fd, buf, count, off) : pread(fd, buf, count, off);
	if (ret < 0) {
		reply_err(errno);
	} else {
		printf("= ok 0x%zx ", (size_t)ret);
		for (i = 0; i < (size_t)ret && i < 8; i++)
			printf("%02x", buf[i]);
		printf("\n");
	}
	free(buf);
}

static void do_lseek(char **a)
{
	int whence = SEEK_SET;
	off_t ret;

	if (a[2] && !strcmp(a[2], "cur"))
		whence = SEEK_CUR;
	else if (a[2] && !strcmp(a[2], "end"))
		whence = SEEK_END;
	ret = lseek((int)num(a[0]), (off_t)num(a[1]), whence);
	if (ret < 0)
		reply_err(errno);
	else
		printf("= ok 0x%llx\n", (unsigned long long)ret);
}

static void do_ioctl(char **a)
{
	unsigned long cmd = PCIIOC_MMAP_IS_MEM, arg = 0;

	if (a[1] && !strcmp(a[1], "io"))
		cmd = PCIIOC_MMAP_IS_IO;
	else if (a[1] && !strcmp(a[1], "wc"))
		cmd = PCIIOC_WRITE_COMBINE, arg = 1;
	else if (a[1] && !strcmp(a[1], "uc"))
		cmd = PCIIOC_WRITE_COMBINE, arg = 0;
	if (ioctl((int)num(a[0]), cmd, arg) < 0)
		reply_err(errno);
	else
		printf("= ok\n");
}

static void do_write_file(const char *path, const char *text, int newline)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	char *buf;
	size_t len = strlen(text);
	ssize_t ret;

	if (fd < 0) {
		reply_err(errno);
		return;
	}
	buf = malloc(len + 2);
	if (!buf) {
		close(fd);
		reply_err(ENOMEM);
		return;
	}
	memcpy(buf, text, len);
	if (newline)
		buf[len++] = '\n';
	ret = write(fd, buf, len);
	if (ret < 0)
		reply_err(errno);
	else
		printf("= ok\n");
	free(buf);
	close(fd);
}

static void do_insmod(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		reply_err(errno);
		return;
	}
	if (syscall(SYS_finit_module, fd, "", 0) < 0)
		reply_err(errno);
	else
		printf("= ok\n");
	close(fd);
}

static void do_rmmod(const char *name)
{
	if (syscall(SYS_delete_module, name, O_NONBLOCK) < 0)
		reply_err(errno);
	else
		printf("= ok\n");
}

static void do_readlink(const char *path)
{
	char target[4096];
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	const char *base;

	if (n < 0) {
		reply_err(errno);
		return;
	}
	target[n] = 0;
	base = strrchr(target, '/');
	printf("= ok %s\n", base ? base + 1 : target);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void do_ls(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char *names[1024];
	int n = 0, i;

	if (!d) {
		reply_err(errno);
		return;
	}
	while ((e = readdir(d)) != NULL && n < 1024)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), by_name);
	for (i = 0; i < n; i++) {
		printf("| %s\n", names[i]);
		free(names[i]);
	}
	printf("= ok %d\n", n);
}

static void do_cat(const char *path)
{
	char line[4096];
	FILE *f = fopen(path, "re");

	if (!f) {
		reply_err(errno);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		printf("| %s\n", line);
	}
	if (ferror(f))
		reply_err(errno);
	else
		printf("= ok\n");
	fclose(f);
}

static void do_ctl(const char *text)
{
	static char out[65536];
	int fd = open(CTL_PATH, O_RDWR | O_CLOEXEC);
	ssize_t ret, got = 0;
	char *rest, *line;

	if (fd < 0) {
		reply_err(errno);
		return;
	}
	if (write(fd, text, strlen(text)) < 0) {
		reply_err(errno);
		close(fd);
		return;
	}
	/* The result line, then whatever lines the command printed. */
	while ((ret = pread(fd, out + got, sizeof(out) - 1 - got, got)) > 0)
		got += ret;
	if (ret < 0) {
		reply_err(errno);
		close(fd);
		return;
	}
	out[got] = 0;
	rest = strchr(out, '\n');
	if (rest)
		*rest++ = 0;
	while (rest && *rest) {
		line = rest;
		rest = strchr(rest, '\n');
		if (rest)
			*rest++ = 0;
		printf("| %s\n", line);
	}
	printf("= ok %s\n", out);
	close(fd);
}

static void do_reset(void)
{
	int i;

	for (i = 0; i < nmaps; i++)
		if (maps[i].addr)
			munmap((void *)maps[i].addr, maps[i].len);
	nmaps = 0;
	for (i = 3; i < 1024; i++)
		close(i);
	printf("= ok\n");
}

static void do_sh(const char *command)
{
	char line[4096];
	FILE *p = popen(command, "r");
	int status;

	if (!p) {
		reply_err(errno);
		return;
	}
	while (fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = 0;
		printf("| %s\n", line);
	}
	status = pclose(p);
	printf("= ok %d\n", status);
}

int main(void)
{
	char line[8192];
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("= ready\n");

	while (fgets(line, sizeof(line), stdin)) {
		char *rest, *a[8] = { 0 };
		char *cmd;
		int n = 0;

		line[strcspn(line, "\r\n")] = 0;
		cmd = strtok_r(line, " ", &rest);
		if (!cmd)
			continue;
		/* Commands whose last argument is free text take the rest of the line. */
		if (!strcmp(cmd, "sh") || !strcmp(cmd, "ctl")) {
			if (!strcmp(cmd, "sh"))
				do_sh(rest ? rest : "");
			else
				do_ctl(rest ? rest : "");
			continue;
		}
		if (!strcmp(cmd, "wr") || !strcmp(cmd, "echo")) {
			char *path = strtok_r(NULL, " ", &rest);

			if (path)
				do_write_file(path, rest ? rest : "", cmd[0] == 'e');
			else
				reply_err(EINVAL);
			continue;
		}
		while (n < 8 && (a[n] = strtok_r(NULL, " ", &rest)))
			n++;
		if (!strcmp(cmd, "open") && n >= 1)
			do_open(a[0], a[1]);
		else if (!strcmp(cmd, "close") && n >= 1)
			do_close(a[0]);
		else if (!strcmp(cmd, "mmap") && n >= 3)
			do_mmap(a);
		else if (!strcmp(cmd, "munmap") && n >= 1)
			do_munmap(a[0]);
		else if (!strcmp(cmd, "touch") && n >= 2)
			do_touch(a);
		else if (!strcmp(cmd, "pmem") && n >= 2)
			do_pmem(a);
		else if (!strcmp(cmd, "pread") && n >= 3)
			do_pread(a, 0);
		else if (!strcmp(cmd, "pwrite") && n >= 3)
			do_pread(a, 1);
		else if (!strcmp(cmd, "lseek") && n >= 2)
			do_lseek(a);
		else if (!strcmp(cmd, "ioctl") && n >= 2)
			do_ioctl(a);
		else if (!strcmp(cmd, "insmod") && n >= 1)
			do_insmod(a[0]);
		else if (!strcmp(cmd, "rmmod") && n >= 1)
			do_rmmod(a[0]);
		else if (!strcmp(cmd, "readlink") && n >= 1)
			do_readlink(a[0]);
		else if (!strcmp(cmd, "ls") && n >= 1)
			do_ls(a[0]);
		else if (!strcmp(cmd, "cat") && n >= 1)
			do_cat(a[0]);
		else if (!strcmp(cmd, "reset"))
			do_reset();
		else if (!strcmp(cmd, "quit"))
			break;
		else
			printf("= err %d\n", EINVAL);
	}
	return 0;
}
