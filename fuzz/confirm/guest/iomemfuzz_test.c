// SPDX-License-Identifier: GPL-2.0
/*
 * iomemfuzz_test: lets a Program's in-kernel lines run on a real kernel.
 *
 * `iomemfuzz confirm` builds this module against the guest kernel's headers package and
 * loads it in the guest. It offers two things:
 *
 * 1. A debugfs control file, /sys/kernel/debug/iomemfuzz/ctl. Writing one command runs
 *    one kernel/resource.c entry point, as a driver would call it; reading the file back
 *    gives the result as a decimal number. A failing call makes the write fail with the
 *    errno the model's line reports (a NULL from __request_region is EBUSY).
 *
 *      region ROOT START N FLAGS ID NAME     __request_region(); the claim is handle ID
 *      release ROOT START N                  __release_region()
 *      reqres ROOT START END FLAGS DESC ID NAME   request_resource() of a new struct
 *      insres ROOT START END FLAGS DESC ID NAME   insert_resource() of a new struct
 *      relres ID / rmres ID                  release_resource() / remove_resource()
 *      insfit ROOT START END FLAGS DESC ID NAME   insert_resource_expand_to_fit()
 *      adjres ID START SIZE                  adjust_resource()
 *      freemem ROOT SIZE ID NAME             request_free_mem_region()
 *      intersects START SIZE FLAGS DESC      region_intersects()
 *      pageram PFN                           page_is_ram()
 *      reset                                 release every struct still in a tree, newest
 *                                            first, and forget the handles
 *
 *    ROOT is "iomem", "ioport", or "hID" (a struct an earlier command created).
 *    Structs and names are never freed: a Program may release a struct and use it again,
 *    and the module must not turn that into a use-after-free of its own.
 *
 * 2. PCI drivers with empty id tables, one per entry of the `drivers` parameter
 *    ("drv:1,noclaim:0": name and whether probe claims the BARs with
 *    pci_request_regions()). They bind only through driver_override, as the host's bind
 *    line asks, so nothing else changes.
 */
#include <linux/debugfs.h>
#include <linux/ioport.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#define MAX_HANDLES 256
#define MAX_DRIVERS 8

static struct resource *handles[MAX_HANDLES];
static long long last_result;
static DEFINE_MUTEX(ctl_lock);
static struct dentry *dir;

static char *drivers = "drv:1";
module_param(drivers, charp, 0444);
MODULE_PARM_DESC(drivers, "name:claims,... PCI drivers to register (claims 1: probe requests every BAR)");

struct test_driver {
	struct pci_driver pci;
	bool claims;
	bool registered;
};

static struct test_driver test_drivers[MAX_DRIVERS];
static const struct pci_device_id no_ids[] = { { 0 } };

static struct resource *root_of(const char *word)
{
	unsigned int id;

	if (!strcmp(word, "iomem"))
		return &iomem_resource;
	if (!strcmp(word, "ioport"))
		return &ioport_resource;
	if (word[0] == 'h' && !kstrtouint(word + 1, 10, &id) && id < MAX_HANDLES)
		return handles[id];
	return NULL;
}

/* A name as the model passes it: an empty name is NULL (/proc/iomem prints "<BAD>"). */
static const char *name_or_null(const char *name)
{
	return *name ? kstrdup(name, GFP_KERNEL) : NULL;
}

static struct resource *new_resource(u64 start, u64 end, unsigned long flags,
				     unsigned long desc, const char *name)
{
	struct resource *res = kzalloc(sizeof(*res), GFP_KERNEL);

	if (!res)
		return NULL;
	res->start = start;
	res->end = end;
	res->flags = flags;
	res->desc = desc;
	res->name = name_or_null(name);
	return res;
}

/* Is @res linked under @root? Compares pointers only: @res may have been freed. */
static bool linked(struct resource *root, struct resource *res)
{
	struct resource *p;

	for (p = root->child; p; p = p->sibling)
		if (p == res || linked(p, res))
			return true;
	return false;
}

/* The words from @from to @end as one string again (a name may hold spaces). */
static char *join(char *from, char *end)
{
	char *q;

	for (q = from; q < end; q++)
		if (!*q)
			*q = ' ';
	return from;
}

/* Runs one command; returns the result (>= 0) or -errno. */
static long long run(char *line)
{
	char *argv[8] = { NULL };
	char *end = line + strlen(line);
	char *name, *p = line;
	int argc = 0;
	u64 a, b, c, d;
	unsigned int id;
	struct resource *root, *res;

	/* Up to seven words; the eighth is the rest of the line (a name may have spaces). */
	while (argc < 7 && (argv[argc] = strsep(&p, " ")) != NULL)
		argc++;
	name = p ? p : "";
	if (argc == 0)
		return -EINVAL;

	if (!strcmp(argv[0], "region") && argc >= 6) {
		root = root_of(argv[1]);
		if (!root || kstrtou64(argv[2], 0, &a) || kstrtou64(argv[3], 0, &b) ||
		    kstrtou64(argv[4], 0, &c) || kstrtouint(argv[5], 0, &id) ||
		    id >= MAX_HANDLES)
			return -EINVAL;
		res = __request_region(root, a, b,
				       name_or_null(argc >= 7 ? join(argv[6], end) : ""), (int)c);
		if (!res)
			return -EBUSY;
		handles[id] = res;
		return 0;
	}
	if (!strcmp(argv[0], "release") && argc >= 4) {
		root = root_of(argv[1]);
		if (!root || kstrtou64(argv[2], 0, &a) || kstrtou64(argv[3], 0, &b))
			return -EINVAL;
		__release_region(root, a, b);
		return 0;
	}
	if ((!strcmp(argv[0], "reqres") || !strcmp(argv[0], "insres") ||
	     !strcmp(argv[0], "insfit")) && argc >= 7) {
		root = root_of(argv[1]);
		if (!root || kstrtou64(argv[2], 0, &a) || kstrtou64(argv[3], 0, &b) ||
		    kstrtou64(argv[4], 0, &c) || kstrtou64(argv[5], 0, &d) ||
		    kstrtouint(argv[6], 0, &id) || id >= MAX_HANDLES)
			return -EINVAL;
		res = new_resource(a, b, c, d, name);
		if (!res)
			return -ENOMEM;
		handles[id] = res;
		if (argv[0][0] == 'r')
			return request_resource(root, res) ? -EBUSY : 0;
		if (!strcmp(argv[0], "insfit")) {
			insert_resource_expand_to_fit(root, res);
			return 0;
		}
		return insert_resource(root, res) ? -EBUSY : 0;
	}
	if (!strcmp(argv[0], "freemem") && argc >= 4) {
		root = root_of(argv[1]);
		if (!root || kstrtou64(argv[2], 0, &a) || kstrtouint(argv[3], 0, &id) ||
		    id >= MAX_HANDLES)
			return -EINVAL;
		res = request_free_mem_region(root, a,
					      name_or_null(argc >= 5 ? join(argv[4], end) : ""));
		if (IS_ERR(res))
			return PTR_ERR(res);
		handles[id] = res;
		return 0;
	}
	if ((!strcmp(argv[0], "relres") || !strcmp(argv[0], "rmres")) && argc >= 2) {
		res = root_of(argv[1]);
		if (!res || res == &iomem_resource || res == &ioport_resource)
			return -EBADF;
		if (argv[0][1] == 'e')
			return release_resource(res);
		return remove_resource(res);
	}
	if (!strcmp(argv[0], "adjres") && argc >= 4) {
		res = root_of(argv[1]);
		if (!res || kstrtou64(argv[2], 0, &a) || kstrtou64(argv[3], 0, &b))
			return -EBADF;
		return adjust_resource(res, a, b);
	}
	if (!strcmp(argv[0], "intersects") && argc >= 5) {
		if (kstrtou64(argv[1], 0, &a) || kstrtou64(argv[2], 0, &b) ||
		    kstrtou64(argv[3], 0, &c) || kstrtou64(argv[4], 0, &d))
			return -EINVAL;
		return region_intersects(a, b, c, d);
	}
	if (!strcmp(argv[0], "reset")) {
		/* A handle may name a struct __release_region() freed: only structs still
		 * found in one of the trees are dereferenced. */
		for (id = MAX_HANDLES; id-- > 0;) {
			res = handles[id];
			if (res && (linked(&iomem_resource, res) || linked(&ioport_resource, res)))
				release_resource(res);
			handles[id] = NULL;
		}
		return 0;
	}
	if (!strcmp(argv[0], "pageram") && argc >= 2) {
		if (kstrtou64(argv[1], 0, &a))
			return -EINVAL;
		return page_is_ram(a);
	}
	return -EINVAL;
}

static ssize_t ctl_write(struct file *file, const char __user *ubuf, size_t count,
			 loff_t *ppos)
{
	char *line;
	long long ret;

	if (count > 1024)
		return -E2BIG;
	line = memdup_user_nul(ubuf, count);
	if (IS_ERR(line))
		return PTR_ERR(line);
	strim(line);
	mutex_lock(&ctl_lock);
	ret = run(line);
	last_result = ret;
	mutex_unlock(&ctl_lock);
	kfree(line);
	return ret < 0 ? ret : count;
}

static ssize_t ctl_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	char buf[32];
	int len = scnprintf(buf, sizeof(buf), "%lld\n", last_result);

	return simple_read_from_buffer(ubuf, count, ppos, buf, len);
}

static const struct file_operations ctl_fops = {
	.owner = THIS_MODULE,
	.write = ctl_write,
	.read = ctl_read,
	.llseek = default_llseek,
};

static int test_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct test_driver *drv = container_of(pdev->driver, struct test_driver, pci);
	int ret = pci_enable_device(pdev);

	if (ret)
		return ret;
	if (drv->claims) {
		ret = pci_request_regions(pdev, drv->pci.name);
		if (ret) {
			pci_disable_device(pdev);
			return ret;
		}
	}
	return 0;
}

static void test_remove(struct pci_dev *pdev)
{
	struct test_driver *drv = container_of(pdev->driver, struct test_driver, pci);

	if (drv->claims)
		pci_release_regions(pdev);
	pci_disable_device(pdev);
}

static void unregister_drivers(void)
{
	int i;

	for (i = 0; i < MAX_DRIVERS; i++)
		if (test_drivers[i].registered)
			pci_unregister_driver(&test_drivers[i].pci);
}

static int register_drivers(void)
{
	char *list = kstrdup(drivers, GFP_KERNEL), *p = list, *entry;
	int n = 0, ret = 0;

	if (!list)
		return -ENOMEM;
	while ((entry = strsep(&p, ",")) != NULL && n < MAX_DRIVERS) {
		char *claims = strchr(entry, ':');
		struct test_driver *drv = &test_drivers[n];

		if (!*entry)
			continue;
		if (claims)
			*claims++ = 0;
		drv->claims = !claims || *claims != '0';
		drv->pci.name = kstrdup(entry, GFP_KERNEL);
		drv->pci.id_table = no_ids;
		drv->pci.probe = test_probe;
		drv->pci.remove = test_remove;
		ret = pci_register_driver(&drv->pci);
		if (ret)
			break;
		drv->registered = true;
		n++;
	}
	kfree(list);
	if (ret)
		unregister_drivers();
	return ret;
}

static int __init iomemfuzz_test_init(void)
{
	int ret = register_drivers();

	if (ret)
		return ret;
	dir = debugfs_create_dir("iomemfuzz", NULL);
	debugfs_create_file("ctl", 0600, dir, NULL, &ctl_fops);
	return 0;
}

static void __exit iomemfuzz_test_exit(void)
{
	debugfs_remove_recursive(dir);
	unregister_drivers();
}

module_init(iomemfuzz_test_init);
module_exit(iomemfuzz_test_exit);
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS(CXL);
MODULE_DESCRIPTION("iomemfuzz confirm: resource calls and claiming PCI drivers for tests");
