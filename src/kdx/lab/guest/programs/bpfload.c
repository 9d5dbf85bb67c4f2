// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * bpfload - create a few BPF maps and load a few BPF programs, then keep them alive.
 *
 * It gives the lab guest's kernel something in prog_idr and map_idr for the `bpf`
 * command to list, with no libbpf, no BTF and no object files: the programs are
 * hand-assembled bytecode passed to the raw bpf() syscall. In a fresh guest the
 * objects get IDs in creation order, so the dump holds:
 *
 *   map 1  ARRAY         (no name)      key 4  value 8   max 4   flags 0, 4 values set
 *   map 2  HASH          "kdx_hash"     key 4  value 16  max 32  BPF_F_NO_PREALLOC, 3 entries
 *   map 3  PERCPU_ARRAY  "kdx_percpu"   key 4  value 8   max 2   flags 0
 *   prog 1 SOCKET_FILTER "kdx_sockfilt" license GPL, looks up map 1
 *   prog 2 XDP           "kdx_xdp_pass" license MIT (not GPL-compatible), returns XDP_PASS
 *   prog 3 TRACEPOINT    (no name)      license GPL, looks up map 2 then map 1
 *
 * A BPF object lives as long as a file descriptor refers to it, so once everything is
 * loaded the program forks: the child inherits the descriptors and sleeps in pause(),
 * while the parent reports and exits, letting the caller go on to crash the kernel.
 * Built with gcc -static -O1.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define INSN(c, d, s, o, i) \
	((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define MOV64_IMM(d, i)    INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define MOV64_REG(d, s)    INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define ADD64_IMM(d, i)    INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, i)
#define ST_W(d, o, i)      INSN(BPF_ST | BPF_MEM | BPF_W, d, 0, o, i)
#define LD_MAP_FD(d, fd)   INSN(BPF_LD | BPF_DW | BPF_IMM, d, BPF_PSEUDO_MAP_FD, 0, fd), \
			   INSN(0, 0, 0, 0, 0)
#define CALL(helper)       INSN(BPF_JMP | BPF_CALL, 0, 0, 0, helper)
#define EXIT()             INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

static char log_buf[65536];

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static int make_map(uint32_t type, const char *name, uint32_t key, uint32_t value,
		    uint32_t entries, uint32_t flags)
{
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.map_type = type;
	attr.key_size = key;
	attr.value_size = value;
	attr.max_entries = entries;
	attr.map_flags = flags;
	strncpy(attr.map_name, name, sizeof(attr.map_name) - 1);
	fd = sys_bpf(BPF_MAP_CREATE, &attr);
	if (fd < 0)
		fprintf(stderr, "bpfload: map %s: %s\n", *name ? name : "(unnamed)",
			strerror(errno));
	return fd;
}

static int put(int fd, uint32_t key, const void *value)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.map_fd = fd;
	attr.key = (uintptr_t)&key;
	attr.value = (uintptr_t)value;
	attr.flags = BPF_ANY;
	if (sys_bpf(BPF_MAP_UPDATE_ELEM, &attr) == 0)
		return 0;
	fprintf(stderr, "bpfload: update of map fd %d key %u: %s\n", fd, key, strerror(errno));
	return -1;
}

static int load(uint32_t type, const char *name, const char *license,
		const struct bpf_insn *insns, size_t count)
{
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = type;
	attr.insns = (uintptr_t)insns;
	attr.insn_cnt = count;
	attr.license = (uintptr_t)license;
	attr.log_buf = (uintptr_t)log_buf;
	attr.log_size = sizeof(log_buf);
	attr.log_level = 1;
	strncpy(attr.prog_name, name, sizeof(attr.prog_name) - 1);
	fd = sys_bpf(BPF_PROG_LOAD, &attr);
	if (fd < 0)
		fprintf(stderr, "bpfload: program %s: %s\n%s\n", *name ? name : "(unnamed)",
			strerror(errno), log_buf);
	return fd;
}

int main(void)
{
	uint64_t small[4] = { 0x1111, 0x2222, 0x3333, 0x4444 };
	uint64_t pair[3][2] = { { 1, 10 }, { 2, 20 }, { 3, 30 } };
	int array, hash, percpu, failed = 0;
	uint32_t i;

	array = make_map(BPF_MAP_TYPE_ARRAY, "", 4, 8, 4, 0);
	hash = make_map(BPF_MAP_TYPE_HASH, "kdx_hash", 4, 16, 32, BPF_F_NO_PREALLOC);
	percpu = make_map(BPF_MAP_TYPE_PERCPU_ARRAY, "kdx_percpu", 4, 8, 2, 0);
	if (array < 0 || hash < 0 || percpu < 0)
		return 1;
	for (i = 0; i < 4; i++)
		failed |= put(array, i, &small[i]);
	for (i = 0; i < 3; i++)
		failed |= put(hash, 100 + i, pair[i]);

	const struct bpf_insn sockfilt[] = {
		ST_W(BPF_REG_10, -4, 0),
		MOV64_REG(BPF_REG_2, BPF_REG_10),
		ADD64_IMM(BPF_REG_2, -4),
		LD_MAP_FD(BPF_REG_1, array),
		CALL(BPF_FUNC_map_lookup_elem),
		MOV64_IMM(BPF_REG_0, 0),
		EXIT(),
	};
	const struct bpf_insn xdp_pass[] = {
		MOV64_IMM(BPF_REG_0, XDP_PASS),
		EXIT(),
	};
	const struct bpf_insn tracepoint[] = {
		ST_W(BPF_REG_10, -4, 101),
		MOV64_REG(BPF_REG_2, BPF_REG_10),
		ADD64_IMM(BPF_REG_2, -4),
		LD_MAP_FD(BPF_REG_1, hash),
		CALL(BPF_FUNC_map_lookup_elem),
		ST_W(BPF_REG_10, -8, 2),
		MOV64_REG(BPF_REG_2, BPF_REG_10),
		ADD64_IMM(BPF_REG_2, -8),
		LD_MAP_FD(BPF_REG_1, array),
		CALL(BPF_FUNC_map_lookup_elem),
		MOV64_IMM(BPF_REG_0, 0),
		EXIT(),
	};
	int progs[3];

	progs[0] = load(BPF_PROG_TYPE_SOCKET_FILTER, "kdx_sockfilt", "GPL", sockfilt,
			sizeof(sockfilt) / sizeof(sockfilt[0]));
	progs[1] = load(BPF_PROG_TYPE_XDP, "kdx_xdp_pass", "MIT", xdp_pass,
			sizeof(xdp_pass) / sizeof(xdp_pass[0]));
	progs[2] = load(BPF_PROG_TYPE_TRACEPOINT, "", "GPL", tracepoint,
			sizeof(tracepoint) / sizeof(tracepoint[0]));
	for (i = 0; i < 3; i++)
		failed |= progs[i] < 0;

	if (fork() == 0) {
		for (;;)
			pause();
	}
	printf("bpfload: 3 maps, 3 programs%s\n", failed ? ", with failures" : "");
	fflush(stdout);
	return failed ? 1 : 0;
}
