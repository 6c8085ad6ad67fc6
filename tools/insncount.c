/* Minimal QEMU TCG plugin: counts the guest instructions executed (all vCPUs)
 * and prints "insns: N" at exit.
 *
 * It declares only the handful of plugin-API symbols it uses, so no
 * qemu-plugin.h is needed (Debian's qemu packages ship neither the header nor
 * any plugins).
 *
 * Build: gcc -shared -fPIC -O2 -DPLUGIN_API=1 -o libinsncount.so insncount.c
 *   PLUGIN_API=1 for QEMU 7.2 (Debian bookworm), 2 for QEMU >= 9.
 * Use:   qemu-system-arm ... -plugin ./libinsncount.so -d plugin -kernel fw.elf
 *   (the count goes through qemu_plugin_outs, which needs "-d plugin"). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef PLUGIN_API
#define PLUGIN_API 1
#endif
#define EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t; /* opaque here */
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0 };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*vcpu_udata_cb_t)(unsigned int vcpu_index, void *udata);
typedef void (*udata_cb_t)(qemu_plugin_id_t, void *udata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb_t);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, vcpu_udata_cb_t,
                                          enum qemu_plugin_cb_flags, void *);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb_t, void *);
void qemu_plugin_outs(const char *);

EXPORT int qemu_plugin_version = PLUGIN_API;

static uint64_t insns; /* single-core M-profile guest: no atomics needed */

static void tb_exec(unsigned int vcpu, void *n)
{
    (void)vcpu;
    insns += (uintptr_t)n;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)qemu_plugin_tb_n_insns(tb));
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    (void)id;
    (void)p;
    char buf[64];
    snprintf(buf, sizeof buf, "insns: %llu\n", (unsigned long long)insns);
    qemu_plugin_outs(buf);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                               char **argv)
{
    (void)info;
    (void)argc;
    (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
