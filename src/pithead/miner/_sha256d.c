/*
 * pithead.miner._sha256d: the native sha256d nonce scanner.
 *
 * What it is: a small CPython extension that scans a range of nonces for one 80-byte Bitcoin block header
 * against a 256-bit target and returns every nonce whose sha256d(header), read as a little-endian 256-bit
 * integer, is <= the target. The SHA-256 midstate of the first 64 header bytes is computed once per job
 * (prepare()); per nonce only the second 64-byte block and the second hash are compressed.
 *
 * Two paths, chosen by the caller (pithead.miner.core) at run time:
 *   - "shani": x86 SHA extensions (SHA256RNDS2/MSG1/MSG2), four independent nonces interleaved so the
 *     latency of each lane's round chain hides behind the others. Compiled with a per-function target attribute
 *     and used only when cpuid says the CPU has SHA, SSSE3 and SSE4.1, so one build runs everywhere.
 *   - "portable": plain C with generic vectors and the usual fixed-message precomputation; runs on any CPU
 *     (aarch64 too); on x86-64 an AVX2 build of the same C is chosen when the CPU has AVX2.
 *
 * What it is not: a general SHA-256 library, or the reference. The reference is hashlib, in
 * pithead.miner.core; the tests compare both paths against it. Candidate hits from the fast paths are
 * re-checked here with the portable full sha256d and an exact 256-bit compare before they are returned.
 *
 * The GIL is released while scanning, so Python threads scale across cores.
 *
 * Build switches (for testing the other branches on an x86 machine): -DPH_NO_SHANI leaves the SHA-NI code
 * out, as on aarch64; -DPH_NO_AVX2 builds the portable kernel for the baseline ISA only.
 *
 * Byte order: SHA-256 reads its message as big-endian 32-bit words. The header nonce is stored
 * little-endian at bytes 76..79, so the message word for nonce n is bswap32(n). The hash bytes are the
 * state words written big-endian, so the most significant 32 bits of the little-endian hash integer are
 * bswap32(H7): that is what the fast paths compare first.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if (defined(__x86_64__) || defined(_M_X64) || defined(__i386__)) && !defined(PH_NO_SHANI)
#define PH_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

/* A prepared job is carried as an immutable bytes object holding this struct; the magic guards against
 * scanning with arbitrary bytes. */
#define PH_JOB_MAGIC 0x70683264u /* "ph2d" */

/* Hits are collected in a growing buffer; this is its first size (hits are rare at real targets). */
#define PH_HITS_INITIAL 16

typedef struct {
    uint32_t magic;
    uint32_t mid[8];     /* SHA-256 state after compressing header[0:64] */
    uint32_t tail[3];    /* message words 0..2 of the second block: header[64:76] read big-endian */
    uint32_t pre[8];     /* state after rounds 0..2 of the second block (those use only tail[]) */
    uint32_t w16, w17;   /* second-block schedule words 16 and 17: independent of the nonce */
    uint32_t target_hi;  /* most significant 32 bits of the target */
    uint8_t target[32];  /* the target, little-endian */
    uint8_t header76[76];
} ph_job;

static const uint32_t K[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t IV[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* ------------------------------------------------------------------------------------------------ */
/* Portable path                                                                                     */
/* ------------------------------------------------------------------------------------------------ */

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define BSIG0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))
#define CH(x, y, z) (((x) & ((y) ^ (z))) ^ (z))
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))

static inline uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t bswap32(uint32_t v) {
    return ((v & 0xffu) << 24) | ((v & 0xff00u) << 8) | ((v >> 8) & 0xff00u) | (v >> 24);
}

/* One round on named variables; the caller rotates the names. */
#define ROUND(a, b, c, d, e, f, g, h, w, k)                      \
    do {                                                         \
        uint32_t t1_ = (h) + BSIG1(e) + CH(e, f, g) + (k) + (w); \
        uint32_t t2_ = BSIG0(a) + MAJ(a, b, c);                  \
        (d) += t1_;                                              \
        (h) = t1_ + t2_;                                         \
    } while (0)

/* Compress one block given its full 64-word schedule, starting at round `from` with state s. */
static inline void rounds_from(uint32_t s[8], const uint32_t w[64], int from, int to) {
    uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    for (int i = from; i < to; i++) {
        uint32_t t1 = h + BSIG1(e) + CH(e, f, g) + K[i] + w[i];
        uint32_t t2 = BSIG0(a) + MAJ(a, b, c);
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s[0] = a; s[1] = b; s[2] = c; s[3] = d; s[4] = e; s[5] = f; s[6] = g; s[7] = h;
}

static inline void expand(uint32_t w[64], int from) {
    for (int i = from; i < 64; i++) w[i] = SSIG1(w[i - 2]) + w[i - 7] + SSIG0(w[i - 15]) + w[i - 16];
}

static void compress_block(uint32_t state[8], const uint8_t block[64]) {
    uint32_t w[64], s[8];
    for (int i = 0; i < 16; i++) w[i] = load_be32(block + 4 * i);
    expand(w, 16);
    memcpy(s, state, sizeof s);
    rounds_from(s, w, 0, 64);
    for (int i = 0; i < 8; i++) state[i] += s[i];
}

/* Full sha256d of an 80-byte header (used to confirm candidates and by sha256d80()). */
static void sha256d_80(const uint8_t header[80], uint8_t out[32]) {
    uint32_t st[8];
    uint8_t block[64];
    memcpy(st, IV, sizeof st);
    compress_block(st, header);
    memset(block, 0, sizeof block);
    memcpy(block, header + 64, 16);
    block[16] = 0x80;
    block[62] = 0x02; /* 640 bits */
    block[63] = 0x80;
    compress_block(st, block);
    uint8_t first[32];
    for (int i = 0; i < 8; i++) store_be32(first + 4 * i, st[i]);
    memcpy(st, IV, sizeof st);
    memset(block, 0, sizeof block);
    memcpy(block, first, 32);
    block[32] = 0x80;
    block[62] = 0x01; /* 256 bits */
    compress_block(st, block);
    for (int i = 0; i < 8; i++) store_be32(out + 4 * i, st[i]);
}

/* hash (32 bytes as sha256d output) read as a little-endian integer, compared with target (LE). */
static int hash_le_leq(const uint8_t hash[32], const uint8_t target[32]) {
    for (int i = 31; i >= 0; i--) {
        if (hash[i] != target[i]) return hash[i] < target[i];
    }
    return 1;
}

static int confirm(const ph_job *job, uint32_t nonce) {
    uint8_t header[80], hash[32];
    memcpy(header, job->header76, 76);
    header[76] = (uint8_t)nonce;
    header[77] = (uint8_t)(nonce >> 8);
    header[78] = (uint8_t)(nonce >> 16);
    header[79] = (uint8_t)(nonce >> 24);
    sha256d_80(header, hash);
    return hash_le_leq(hash, job->target);
}

typedef struct {
    uint32_t *v;
    size_t n, cap;
    int oom;
} hits_t;

static void hits_push(hits_t *h, uint32_t nonce) {
    if (h->oom) return;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : PH_HITS_INITIAL;
        uint32_t *v = PyMem_RawRealloc(h->v, cap * sizeof *v);
        if (!v) {
            h->oom = 1;
            return;
        }
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n++] = nonce;
}

/* The fast kernels only compare the top 32 bits of the hash and write candidate nonces into a local
 * buffer; candidates are confirmed (full sha256d, exact compare) outside the hot loop. A call inside the
 * kernel's loop would force the compiler to treat every xmm register as clobbered, which measured at
 * about half the SHA-NI speed. Kernels run at most PH_CHUNK nonces per call, so the buffer cannot overflow. */
#define PH_CHUNK 4096

static inline int is_candidate(const ph_job *job, uint32_t h7) { return bswap32(h7) <= job->target_hi; }

typedef size_t (*kernel_fn)(const ph_job *job, uint32_t start, uint32_t count, uint32_t *cand);

static void scan_with(kernel_fn kernel, const ph_job *job, uint32_t start, uint64_t count, hits_t *hits) {
    uint32_t cand[PH_CHUNK];
    uint64_t done = 0;
    while (done < count && !hits->oom) {
        uint32_t n = (uint32_t)((count - done) < PH_CHUNK ? (count - done) : PH_CHUNK);
        size_t nc = kernel(job, (uint32_t)(start + done), n, cand);
        for (size_t j = 0; j < nc; j++) {
            if (confirm(job, cand[j])) hits_push(hits, cand[j]);
        }
        done += n;
    }
}

/* The portable kernel hashes several nonces at once with GCC/Clang generic vectors: plain C that the
 * compiler lowers to SSE2 on x86-64, NEON on aarch64, or scalar code elsewhere (4 lanes, one 128-bit
 * register per word). On x86-64 the same C is also compiled for AVX2 with 16 lanes (two 256-bit registers
 * per word: more independent work per round) and picked at run time when the CPU has AVX2.
 * Measured (best of short runs, Zen 4): baseline 4 lanes ~4.3 MH/s; AVX2 8 lanes ~7-14, 16 lanes ~12-14. */
#define VROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define VBSIG0(x) (VROTR(x, 2) ^ VROTR(x, 13) ^ VROTR(x, 22))
#define VBSIG1(x) (VROTR(x, 6) ^ VROTR(x, 11) ^ VROTR(x, 25))
#define VSSIG0(x) (VROTR(x, 7) ^ VROTR(x, 18) ^ ((x) >> 3))
#define VSSIG1(x) (VROTR(x, 17) ^ VROTR(x, 19) ^ ((x) >> 10))

/* Rounds [from, to) on vectors of type V; w is the full schedule (expanded on the fly from index 16). */
#define VROUNDS(V, st, w, from, to)                                                        \
    do {                                                                                   \
        V a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7]; \
        _Pragma("GCC unroll 64") for (int r = (from); r < (to); r++) {                     \
            if (r >= 16) w[r] = VSSIG1(w[r - 2]) + w[r - 7] + VSSIG0(w[r - 15]) + w[r - 16]; \
            V t1 = h + VBSIG1(e) + ((e & (f ^ g)) ^ g) + K[r] + w[r];                      \
            V t2 = VBSIG0(a) + ((a & b) | (c & (a | b)));                                  \
            h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;              \
        }                                                                                  \
        st[0] = a; st[1] = b; st[2] = c; st[3] = d; st[4] = e; st[5] = f; st[6] = g; st[7] = h; \
    } while (0)

/* One kernel body for a vector type V of LANES u32 lanes. */
#define DEFINE_PORTABLE_KERNEL(NAME, V, LANES, ATTR)                                                    \
    ATTR static size_t NAME(const ph_job *job, uint32_t start, uint32_t count, uint32_t *cand) {        \
        size_t nc = 0;                                                                                  \
        for (uint32_t i = 0; i < count; i += (LANES)) {                                                 \
            V w[64], w2[64], st[8];                                                                     \
            V zero = {0};                                                                               \
            /* Second block: words 0..2 fixed per job, word 3 = nonce, then padding (80-byte message). */ \
            for (int j = 0; j < 16; j++) w[j] = zero;                                                   \
            w[0] += job->tail[0];                                                                       \
            w[1] += job->tail[1];                                                                       \
            w[2] += job->tail[2];                                                                       \
            V nv_ = zero;                                                                               \
            for (int l = 0; l < (LANES); l++) nv_[l] = bswap32(start + i + (uint32_t)l);              \
            w[3] = nv_;                                                                                 \
            w[4] += 0x80000000u;                                                                        \
            w[15] += 640u;                                                                              \
            /* Rounds 0..2 are in job->pre; they use only the fixed words. */                           \
            for (int j = 0; j < 8; j++) st[j] = zero + job->pre[j];                                     \
            VROUNDS(V, st, w, 3, 64);                                                                   \
            /* Second hash: the first hash's state words, then padding for a 32-byte message. */        \
            for (int j = 0; j < 8; j++) w2[j] = st[j] + job->mid[j];                                    \
            for (int j = 8; j < 16; j++) w2[j] = zero;                                                  \
            w2[8] += 0x80000000u;                                                                       \
            w2[15] += 256u;                                                                             \
            for (int j = 0; j < 8; j++) st[j] = zero + IV[j];                                           \
            /* The final H7 is e after round 60 (it shifts e->f->g->h over rounds 61..63). */           \
            VROUNDS(V, st, w2, 0, 61);                                                                  \
            V h7 = st[4] + IV[7];                                                                       \
            for (int l = 0; l < (LANES); l++) {                                                         \
                if (is_candidate(job, h7[l]) && i + (uint32_t)l < count) cand[nc++] = start + i + (uint32_t)l; \
            }                                                                                           \
        }                                                                                               \
        return nc;                                                                                      \
    }

typedef uint32_t vu32x4 __attribute__((vector_size(16)));
DEFINE_PORTABLE_KERNEL(kernel_portable_base, vu32x4, 4, )

/* -DPH_NO_AVX2 builds only the baseline kernel (used to test it on machines that have AVX2). */
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && !defined(PH_NO_AVX2)
#define PH_HAVE_AVX2_KERNEL 1
typedef uint32_t vu32x16 __attribute__((vector_size(64)));
DEFINE_PORTABLE_KERNEL(kernel_portable_avx2, vu32x16, 16, __attribute__((target("avx2"))))
#endif

static kernel_fn portable_kernel(void) {
#ifdef PH_HAVE_AVX2_KERNEL
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) return kernel_portable_avx2;
#endif
    return kernel_portable_base;
}

/* ------------------------------------------------------------------------------------------------ */
/* SHA-NI path (x86)                                                                                 */
/* ------------------------------------------------------------------------------------------------ */
#ifdef PH_X86
#define SHANI __attribute__((target("sha,sse4.1,ssse3")))

static int cpu_has_shani(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    int sha = (b >> 29) & 1;
    return ssse3 && sse41 && sha;
}

/* Independent nonces hashed together: SHA256RNDS2 has a multi-cycle latency and each lane's rounds form
 * one dependent chain, so several lanes in flight keep the SHA unit busy. Per CPU-second on Zen 4:
 * 1 lane ~17, 2: 28.0, 3: 30.1, 4: 31.2, 5: 31.7, 6: 30.1, 8: 27.3 MH/s. Four is kept: within 2 % of the
 * best, and it leaves the 16 xmm registers some room on other microarchitectures. */
#define NI_LANES 4

#define NI_FOR _Pragma("GCC unroll 8") for (int l = 0; l < NI_LANES; l++)

/* Four rounds on every lane: S0 = ABEF, S1 = CDGH on entry and exit; M[l] holds four message words. */
#define NI_RND4(M, k)                                                                   \
    do {                                                                                \
        __m128i t_[NI_LANES];                                                           \
        NI_FOR {                                                                        \
            __m128i wk_ = _mm_add_epi32((M)[l], _mm_load_si128((const __m128i *)&K[k])); \
            S1[l] = _mm_sha256rnds2_epu32(S1[l], S0[l], wk_);                           \
            t_[l] = _mm_shuffle_epi32(wk_, 0x0E);                                       \
        }                                                                               \
        NI_FOR { S0[l] = _mm_sha256rnds2_epu32(S0[l], S1[l], t_[l]); }                  \
    } while (0)

/* Next four schedule words into M0, from M0..M3 = W[i-16..i-13], W[i-12..], W[i-8..], W[i-4..]. */
#define NI_SCHED(M0, M1, M2, M3)                                                                        \
    do {                                                                                                \
        NI_FOR {                                                                                        \
            (M0)[l] = _mm_sha256msg2_epu32(                                                             \
                _mm_add_epi32(_mm_sha256msg1_epu32((M0)[l], (M1)[l]), _mm_alignr_epi8((M3)[l], (M2)[l], 4)), \
                (M3)[l]);                                                                               \
        }                                                                                               \
    } while (0)

/* Rounds 4..59 on every lane; the schedule words for rounds 60..63 are left in M3. */
#define NI_ROUNDS_4_TO_59()                                                     \
    NI_RND4(M1, 4); NI_RND4(M2, 8); NI_RND4(M3, 12);                            \
    NI_SCHED(M0, M1, M2, M3); NI_RND4(M0, 16);                                  \
    NI_SCHED(M1, M2, M3, M0); NI_RND4(M1, 20);                                  \
    NI_SCHED(M2, M3, M0, M1); NI_RND4(M2, 24);                                  \
    NI_SCHED(M3, M0, M1, M2); NI_RND4(M3, 28);                                  \
    NI_SCHED(M0, M1, M2, M3); NI_RND4(M0, 32);                                  \
    NI_SCHED(M1, M2, M3, M0); NI_RND4(M1, 36);                                  \
    NI_SCHED(M2, M3, M0, M1); NI_RND4(M2, 40);                                  \
    NI_SCHED(M3, M0, M1, M2); NI_RND4(M3, 44);                                  \
    NI_SCHED(M0, M1, M2, M3); NI_RND4(M0, 48);                                  \
    NI_SCHED(M1, M2, M3, M0); NI_RND4(M1, 52);                                  \
    NI_SCHED(M2, M3, M0, M1); NI_RND4(M2, 56);                                  \
    NI_SCHED(M3, M0, M1, M2)

SHANI static size_t kernel_shani(const ph_job *job, uint32_t start, uint32_t count, uint32_t *cand) {
    size_t nc = 0;
    /* Midstate and IV in the ABEF/CDGH layout. */
    const __m128i mid0 = _mm_set_epi32((int)job->mid[0], (int)job->mid[1], (int)job->mid[4], (int)job->mid[5]);
    const __m128i mid1 = _mm_set_epi32((int)job->mid[2], (int)job->mid[3], (int)job->mid[6], (int)job->mid[7]);
    const __m128i iv0 = _mm_set_epi32((int)IV[0], (int)IV[1], (int)IV[4], (int)IV[5]);
    const __m128i iv1 = _mm_set_epi32((int)IV[2], (int)IV[3], (int)IV[6], (int)IV[7]);
    /* Second block message: [tail0 tail1 tail2 nonce] [0x80000000 0 0 0] [0 0 0 0] [0 0 0 640]. */
    const __m128i blk0 = _mm_set_epi32(0, (int)job->tail[2], (int)job->tail[1], (int)job->tail[0]);
    const __m128i pad1 = _mm_set_epi32(0, 0, 0, (int)0x80000000u);
    const __m128i blk3 = _mm_set_epi32(640, 0, 0, 0);
    /* Second hash padding (32-byte message): [0x80000000 0 0 0] [0 0 0 256]. */
    const __m128i pad3 = _mm_set_epi32(256, 0, 0, 0);
    const __m128i zero = _mm_setzero_si128();
    /* Rounds 0 and 1 of the second block use only header words (W0, W1): one SHA256RNDS2 per job. */
    const __m128i k0 = _mm_load_si128((const __m128i *)&K[0]);
    const __m128i pre = _mm_sha256rnds2_epu32(mid1, mid0, _mm_add_epi32(blk0, k0));

    for (uint32_t i = 0; i < count; i += NI_LANES) {
        __m128i S0[NI_LANES], S1[NI_LANES], M0[NI_LANES], M1[NI_LANES], M2[NI_LANES], M3[NI_LANES];
        uint32_t h7[NI_LANES];
        NI_FOR {
            M0[l] = _mm_insert_epi32(blk0, (int)bswap32(start + i + (uint32_t)l), 3);
            M1[l] = pad1;
            M2[l] = zero;
            M3[l] = blk3;
            /* Rounds 2 and 3 (W2, nonce) from the precomputed state after rounds 0 and 1. */
            S1[l] = pre;
            S0[l] = _mm_sha256rnds2_epu32(mid0, pre, _mm_shuffle_epi32(_mm_add_epi32(M0[l], k0), 0x0E));
        }
        /* First hash, second block (the first block is the midstate). */
        NI_ROUNDS_4_TO_59();
        NI_RND4(M3, 60);
        /* Feed forward, then the second hash's message is the eight state words and padding. */
        NI_FOR {
            __m128i a_ = _mm_shuffle_epi32(_mm_add_epi32(S0[l], mid0), 0x1B);
            __m128i c_ = _mm_shuffle_epi32(_mm_add_epi32(S1[l], mid1), 0xB1);
            M0[l] = _mm_blend_epi16(a_, c_, 0xF0);
            M1[l] = _mm_alignr_epi8(c_, a_, 8);
            M2[l] = pad1;
            M3[l] = pad3;
            S0[l] = iv0;
            S1[l] = iv1;
        }
        NI_RND4(M0, 0);
        NI_ROUNDS_4_TO_59();
        /* Rounds 60 and 61 only: afterwards lane 0 (F) of the new ABEF is e after round 60, which
         * becomes the final h; rounds 62 and 63 cannot change it. */
        NI_FOR {
            __m128i wk_ = _mm_add_epi32(M3[l], _mm_load_si128((const __m128i *)&K[60]));
            h7[l] = (uint32_t)_mm_cvtsi128_si32(_mm_sha256rnds2_epu32(S1[l], S0[l], wk_)) + IV[7];
        }
        for (int l = 0; l < NI_LANES; l++) {
            if (is_candidate(job, h7[l]) && i + (uint32_t)l < count) cand[nc++] = start + i + (uint32_t)l;
        }
    }
    return nc;
}
#else
static int cpu_has_shani(void) { return 0; }
#define kernel_shani kernel_portable_base
#endif

/* ------------------------------------------------------------------------------------------------ */
/* Python interface                                                                                  */
/* ------------------------------------------------------------------------------------------------ */

#define PH_PATH_PORTABLE 0
#define PH_PATH_SHANI 1

static int g_has_shani = 0;
static kernel_fn g_portable = NULL;

PyDoc_STRVAR(prepare_doc,
             "prepare(header76: bytes, target: bytes) -> bytes\n\n"
             "Compute the per-job state (midstate of header[0:64], fixed second-block words) for a 76-byte\n"
             "header prefix and a 32-byte little-endian target. Returns an opaque immutable job value.");

static PyObject *py_prepare(PyObject *self, PyObject *args) {
    Py_buffer hb, tb;
    if (!PyArg_ParseTuple(args, "y*y*:prepare", &hb, &tb)) return NULL;
    if (hb.len != 76 || tb.len != 32) {
        PyBuffer_Release(&hb);
        PyBuffer_Release(&tb);
        PyErr_SetString(PyExc_ValueError, "prepare() needs a 76-byte header prefix and a 32-byte target");
        return NULL;
    }
    ph_job job;
    memset(&job, 0, sizeof job);
    job.magic = PH_JOB_MAGIC;
    memcpy(job.header76, hb.buf, 76);
    memcpy(job.target, tb.buf, 32);
    PyBuffer_Release(&hb);
    PyBuffer_Release(&tb);

    memcpy(job.mid, IV, sizeof job.mid);
    compress_block(job.mid, job.header76);
    for (int i = 0; i < 3; i++) job.tail[i] = load_be32(job.header76 + 64 + 4 * i);
    job.target_hi = ((uint32_t)job.target[31] << 24) | ((uint32_t)job.target[30] << 16) |
                    ((uint32_t)job.target[29] << 8) | (uint32_t)job.target[28];
    /* Rounds 0..2 of the second block use only tail[] (word 3 is the nonce). */
    uint32_t w[64];
    memset(w, 0, sizeof w);
    w[0] = job.tail[0];
    w[1] = job.tail[1];
    w[2] = job.tail[2];
    memcpy(job.pre, job.mid, sizeof job.pre);
    rounds_from(job.pre, w, 0, 3);
    /* W16 = s1(W14) + W9 + s0(W1) + W0 and W17 = s1(W15) + W10 + s0(W2) + W1: no nonce in either. */
    job.w16 = SSIG1(0u) + 0u + SSIG0(job.tail[1]) + job.tail[0];
    job.w17 = SSIG1(640u) + 0u + SSIG0(job.tail[2]) + job.tail[1];
    return PyBytes_FromStringAndSize((const char *)&job, sizeof job);
}

PyDoc_STRVAR(scan_doc,
             "scan(job: bytes, nonce_start: int, count: int, path: int) -> list[int]\n\n"
             "Scan nonces [nonce_start, nonce_start + count) of a prepared job; path 0 = portable,\n"
             "1 = SHA-NI. Returns the hit nonces in increasing order. Releases the GIL while scanning.");

static PyObject *py_scan(PyObject *self, PyObject *args) {
    const char *buf;
    Py_ssize_t len;
    unsigned long long start, count;
    int path;
    if (!PyArg_ParseTuple(args, "y#KKi:scan", &buf, &len, &start, &count, &path)) return NULL;
    if (len != (Py_ssize_t)sizeof(ph_job)) {
        PyErr_SetString(PyExc_ValueError, "scan() needs a job made by prepare()");
        return NULL;
    }
    ph_job job;
    memcpy(&job, buf, sizeof job);
    if (job.magic != PH_JOB_MAGIC) {
        PyErr_SetString(PyExc_ValueError, "scan() needs a job made by prepare()");
        return NULL;
    }
    if (start > 0xffffffffULL || count > 0x100000000ULL || start + count > 0x100000000ULL) {
        PyErr_SetString(PyExc_ValueError, "nonce range must lie within [0, 2**32)");
        return NULL;
    }
    if (path != PH_PATH_PORTABLE && path != PH_PATH_SHANI) {
        PyErr_SetString(PyExc_ValueError, "unknown path");
        return NULL;
    }
    if (path == PH_PATH_SHANI && !g_has_shani) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU has no SHA-NI");
        return NULL;
    }
    hits_t hits = {NULL, 0, 0, 0};
    Py_BEGIN_ALLOW_THREADS
    scan_with(path == PH_PATH_SHANI ? kernel_shani : g_portable, &job, (uint32_t)start, count, &hits);
    Py_END_ALLOW_THREADS
    if (hits.oom) {
        PyMem_RawFree(hits.v);
        return PyErr_NoMemory();
    }
    PyObject *out = PyList_New((Py_ssize_t)hits.n);
    if (!out) {
        PyMem_RawFree(hits.v);
        return NULL;
    }
    for (size_t i = 0; i < hits.n; i++) {
        PyObject *v = PyLong_FromUnsignedLong(hits.v[i]);
        if (!v) {
            Py_DECREF(out);
            PyMem_RawFree(hits.v);
            return NULL;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, v);
    }
    PyMem_RawFree(hits.v);
    return out;
}

PyDoc_STRVAR(midstate_doc,
             "midstate(block: bytes) -> bytes\n\n"
             "The SHA-256 state after compressing one 64-byte block from the IV, as 8 big-endian words.");

static PyObject *py_midstate(PyObject *self, PyObject *args) {
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "y*:midstate", &b)) return NULL;
    if (b.len != 64) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "midstate() needs exactly 64 bytes");
        return NULL;
    }
    uint32_t st[8];
    memcpy(st, IV, sizeof st);
    compress_block(st, (const uint8_t *)b.buf);
    PyBuffer_Release(&b);
    uint8_t out[32];
    for (int i = 0; i < 8; i++) store_be32(out + 4 * i, st[i]);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

PyDoc_STRVAR(sha256d80_doc, "sha256d80(header: bytes) -> bytes\n\nsha256d of an 80-byte header (raw digest order).");

static PyObject *py_sha256d80(PyObject *self, PyObject *args) {
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "y*:sha256d80", &b)) return NULL;
    if (b.len != 80) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "sha256d80() needs exactly 80 bytes");
        return NULL;
    }
    uint8_t out[32];
    sha256d_80((const uint8_t *)b.buf, out);
    PyBuffer_Release(&b);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *py_has_shani(PyObject *self, PyObject *noargs) { return PyBool_FromLong(g_has_shani); }

static PyMethodDef methods[] = {
    {"prepare", py_prepare, METH_VARARGS, prepare_doc},
    {"scan", py_scan, METH_VARARGS, scan_doc},
    {"midstate", py_midstate, METH_VARARGS, midstate_doc},
    {"sha256d80", py_sha256d80, METH_VARARGS, sha256d80_doc},
    {"has_shani", py_has_shani, METH_NOARGS, "True when the CPU has the x86 SHA extensions (and this build can use them)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT, "_sha256d",
    "Native sha256d nonce scanner for pithead's miner (portable C and x86 SHA-NI paths).", -1, methods,
};

PyMODINIT_FUNC PyInit__sha256d(void) {
    g_has_shani = cpu_has_shani();
    g_portable = portable_kernel();
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "PATH_PORTABLE", PH_PATH_PORTABLE) < 0 ||
        PyModule_AddIntConstant(m, "PATH_SHANI", PH_PATH_SHANI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
