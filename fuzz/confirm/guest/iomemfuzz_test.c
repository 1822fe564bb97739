// SPDX-License-Identifier: GPL-2.0
/*
 * iomemfuzz_test: lets a Program's in-kernel lines run on a real kernel.
 *
 * `iomemfuzz confirm` builds this module against the guest kernel's headers package and
 * loads it in the guest. It offers two things:
 *
 * 1. A debugfs control file, /sys/kernel/debug/iomemfuzz/ctl. Writing one command runs
 *    one kernel/resource.c entry point, as a driver would call it; reading the file back
 *    gives the result as a decimal number on the first line. A failing call makes the write fail with the
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
 *      busy ROOT START END                   the busy entries of the tree that overlap
 *                                            [START, END]: after the count, one line
 *                                            "START END NAME" each, in /proc/iomem order
 *      drvload NAME CLAIMS IDS               register a PCI driver (2. below)
 *      drvunload NAME                        unregister it (pci_unregister_driver())
 *      drvreset                              unregister every driver drvload registered
 *      reset                                 release every struct still in a tree, newest
 *                                            first, and forget the handles
 *
 *    ROOT is "iomem", "ioport", or "hID" (a struct an earlier command created).
 *    Structs and names are never freed: a Program may release a struct and use it again,
 *    and the module must not turn that into a use-after-free of its own.
 *
 * 2. The PCI drivers a Program loads whose behaviour is the model's generic driver (a
 *    module_load line naming a driver the model does not take from a real source).
 *    `drvload NAME CLAIMS IDS` registers a pci_driver called NAME: its id table is IDS
 *    ("-" for none: the table pointer stays NULL, like a driver that binds through new_id
 *    or driver_override only; else a comma list of VENDOR:DEVICE:CLASS:CLASS_MASK in hex,
 *    ffffffff for any vendor or device); its probe enables the device
 *    (pci_enable_device()) and, when CLAIMS is 1, requests every BAR under NAME
 *    (pci_request_regions()); its remove undoes both. Registering probes every matching
 *    unbound device, as loading a module does. A name some PCI driver already has is
 *    EEXIST (what insmod answers for a module that is loaded); unloading a name drvload
 *    did not register is ENOENT (rmmod's answer for a module that is not).
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
#define MAX_DRIVERS 64
#define TEXT_SIZE 16384

static struct resource *handles[MAX_HANDLES];
static long long last_result;
/* Lines a command prints after its result (busy); empty for the others. */
static char text[TEXT_SIZE];
static size_t text_len;
static DEFINE_MUTEX(ctl_lock);
static struct dentry *dir;

struct test_driver {
	struct pci_driver pci;
	bool claims;
	bool registered;
};

/* Every driver drvload made. A driver's struct is never reused or freed: the driver core
 * may still hold its kobject for a moment after pci_unregister_driver() returns. */
static struct test_driver *test_drivers[MAX_DRIVERS];
static int n_drivers;

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

static void busy_walk(struct resource *root, u64 start, u64 end);
static struct test_driver *find_test_driver(const char *name);
static int driver_load(const char *name, bool claims, char *id_list);
static void driver_unload(struct test_driver *drv);
static void unregister_drivers(void);

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
	if (!strcmp(argv[0], "busy") && argc >= 4) {
		root = root_of(argv[1]);
		if (!root || kstrtou64(argv[2], 0, &a) || kstrtou64(argv[3], 0, &b))
			return -EINVAL;
		busy_walk(root, a, b);
		return 0;
	}
	if (!strcmp(argv[0], "drvload") && argc >= 4)
		return driver_load(argv[1], strcmp(argv[2], "0") != 0, argv[3]);
	if (!strcmp(argv[0], "drvunload") && argc >= 2) {
		struct test_driver *drv = find_test_driver(argv[1]);

		if (!drv)
			return -ENOENT;
		driver_unload(drv);
		return 0;
	}
	if (!strcmp(argv[0], "drvreset")) {
		unregister_drivers();
		return 0;
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
	text_len = 0;
	text[0] = 0;
	ret = run(line);
	last_result = ret;
	mutex_unlock(&ctl_lock);
	kfree(line);
	return ret < 0 ? ret : count;
}

static ssize_t ctl_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	ssize_t ret;
	char *buf = kmalloc(TEXT_SIZE + 32, GFP_KERNEL);
	int len;

	if (!buf)
		return -ENOMEM;
	mutex_lock(&ctl_lock);
	len = scnprintf(buf, TEXT_SIZE + 32, "%lld\n%s", last_result, text);
	mutex_unlock(&ctl_lock);
	ret = simple_read_from_buffer(ubuf, count, ppos, buf, len);
	kfree(buf);
	return ret;
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

/* "VENDOR:DEVICE:CLASS:MASK,..." -> a zero-terminated id table; NULL for "-". */
static struct pci_device_id *parse_ids(char *list, int *err)
{
	struct pci_device_id *ids;
	char *p, *entry;
	int n = 1, i = 0;

	*err = 0;
	if (!strcmp(list, "-"))
		return NULL;
	for (p = list; *p; p++)
		n += *p == ',';
	ids = kcalloc(n + 1, sizeof(*ids), GFP_KERNEL);
	if (!ids) {
		*err = -ENOMEM;
		return NULL;
	}
	while ((entry = strsep(&list, ",")) != NULL && i < n) {
		unsigned int v, d, c, m;

		if (sscanf(entry, "%x:%x:%x:%x", &v, &d, &c, &m) != 4) {
			kfree(ids);
			*err = -EINVAL;
			return NULL;
		}
		ids[i].vendor = v;
		ids[i].device = d;
		ids[i].subvendor = PCI_ANY_ID;
		ids[i].subdevice = PCI_ANY_ID;
		ids[i].class = c;
		ids[i].class_mask = m;
		i++;
	}
	return ids;
}

static struct test_driver *find_test_driver(const char *name)
{
	int i;

	for (i = 0; i < n_drivers; i++)
		if (test_drivers[i]->registered && !strcmp(test_drivers[i]->pci.name, name))
			return test_drivers[i];
	return NULL;
}

static int driver_load(const char *name, bool claims, char *id_list)
{
	struct test_driver *drv;
	int err, ret;

	if (driver_find(name, &pci_bus_type))
		return -EEXIST;
	if (n_drivers >= MAX_DRIVERS)
		return -ENOSPC;
	drv = kzalloc(sizeof(*drv), GFP_KERNEL);
	if (!drv)
		return -ENOMEM;
	drv->pci.id_table = parse_ids(id_list, &err);
	drv->pci.name = kstrdup(name, GFP_KERNEL);
	if (err || !drv->pci.name) {
		kfree(drv->pci.name);
		kfree(drv->pci.id_table);
		kfree(drv);
		return err ? err : -ENOMEM;
	}
	drv->claims = claims;
	drv->pci.probe = test_probe;
	drv->pci.remove = test_remove;
	ret = pci_register_driver(&drv->pci);
	if (ret)
		return ret;
	drv->registered = true;
	test_drivers[n_drivers++] = drv;
	return 0;
}

static void driver_unload(struct test_driver *drv)
{
	pci_unregister_driver(&drv->pci);
	drv->registered = false;
}

static void unregister_drivers(void)
{
	int i;

	for (i = n_drivers; i-- > 0;)
		if (test_drivers[i]->registered)
			driver_unload(test_drivers[i]);
}

/* Appends the busy entries of @root's subtree that overlap [@start, @end] to text[], in
 * the order /proc/iomem prints them. */
static void busy_walk(struct resource *root, u64 start, u64 end)
{
	struct resource *p;

	for (p = root->child; p; p = p->sibling) {
		if ((p->flags & IORESOURCE_BUSY) && p->start <= end && p->end >= start)
			text_len += scnprintf(text + text_len, TEXT_SIZE - text_len,
					      "%llx %llx %s\n", (unsigned long long)p->start,
					      (unsigned long long)p->end,
					      p->name ? p->name : "<BAD>");
		busy_walk(p, start, end);
	}
}

static int __init iomemfuzz_test_init(void)
{
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
MODULE_DESCRIPTION("iomemfuzz confirm: resource calls and PCI drivers for tests");
