// Weights repacked at load into WeightLayout::Rows8 (matmul.h): the layout the
// register-blocked prefill kernels read (kernels/x86/matmul_rows8.cpp), as
// llama.cpp's repacked Q4_0 8x8 paths (ggml-cpu/repack.cpp) interleave rows.
//
// Rows are taken in groups of eight. A group holds, for each block index b
// in turn, one "x8 block": the eight rows' block b interleaved, as many bytes
// as the eight blocks it replaces (so a row still costs row_bytes, and a
// group starts at 8 * row_bytes * g):
//
//   d   fp16 [8]           the rows' scales, row r at r
//   m   fp16 [8]           Q4_1/Q5_1: the rows' mins
//   qh  uint8 [32]         Q5_0/Q5_1: byte 4r+k, bits 2j..2j+1 = the top two bits of
//                          row r's code of element 16+4j+k (j = 0..3)
//   qs  uint8 [4][32]      Q4: vector j, byte 4r+k = row r's qs[4j+k]: its low
//                          nibble is element 4j+k, its high nibble element 16+4j+k
//                          Q5: vector j, byte 4r+k = row r's five-bit code of element
//                          4j+k (bits 0..4) and the low three bits of element 16+4j+k's
//                          (bits 5..7), so a decode product takes chunk j with one mask
//                          and chunk 4+j with five ops, where the fifth bits one per
//                          byte of qh took three more a chunk (a shift, a mask, an or)
//       int8 [8][32]       Q8_0: vector c, byte 4r+k = row r's code of element 4c+k
//
// Q8_0's x8 block (272 bytes) has its lanes across the rows for the decode
// products' sake: one broadcast of an activation's four codes of chunk c meets
// the eight rows' codes of that chunk, and the eight rows' int32 block sums
// come out in one vector, so the convert, the scale product and the FMA of a
// block serve eight rows (its kernels: kernels/x86/matmul.cpp, rows8_q8_0; in
// the file's layout those three are made per row and block, and set the
// pace). Its d first and
// the unaligned qs loads measured as fast as the scales grouped after the
// group's codes with aligned loads (a scratch prototype, 4096 x 576, m = 1..8).
//
// Q4_K (super-blocks of 256 in eight sub-blocks of 32) is laid out alike, per
// super-block b, in 1184 bytes (the eight blocks' 1152 and 32 more: the 6-bit
// scales and mins unpacked to bytes, so no vector has to unpack twelve bytes
// per row):
//
//   d, dmin fp16 [8] each
//   sc   uint8 [8][8]      sc[s][r]: row r's scale of sub-block s
//   m    uint8 [4][8][2]   m[p][r][e]: row r's min of sub-block 2p+e
//   qs   uint8 [4][8][32]  pair j, vector v, byte 4r+k = row r's qs[32j+4v+k]: its low
//                          nibble is element 64j+4v+k (sub-block 2j), its high nibble
//                          element 64j+32+4v+k (sub-block 2j+1)
//
// Q6_K, per super-block b, in its own 1680 bytes (chunk c: elements 4c..4c+3 of
// each row, within sub-block c / 4; code = the unsigned six bits, 32 too high):
//
//   d     fp16 [8]
//   sc    int8 [8][8][2]       sc[p][r][e]: row r's scale of sub-block 2p+e
//   codes uint8 [16][3][32]    sub-block s (chunks 4s..4s+3), vector v, byte 4r+k:
//                              bits 0..5 = chunk 4s+v's element k, bits 6..7 = bits
//                              2v..2v+1 of chunk 4s+3's element k
//
// so three of a sub-block's four chunks come out of a vector by one AND each
// (ggml's ql nibbles and qh bit pairs took a shift, two ANDs and an OR per
// chunk, the mask and shift of the qh pair per chunk besides).
//
// Read as 32-byte vectors, each 32-bit lane is one row: vector j's low nibbles
// are the rows' elements 4j..4j+3 ("chunk" j), its high nibbles elements
// 16+4j..16+4j+3 (chunk 4+j); chunk c is elements 4c..4c+3 of every row. One
// broadcast of an activation's four codes of chunk c then meets all eight
// rows in one u8 x s8 dot product, and the sums land one row per lane, so
// the scales apply as vectors and no horizontal sum is left.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/matmul.h"
#include "runtime/thread_pool.h"

namespace ggufsm {

constexpr int64_t kRows8 = 8;

// True when `type` has a Rows8 layout (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K).
bool repackable_type(TensorType type);
// True when w (in the file's layout) can be repacked: a repackable type and rows % 8 == 0.
bool repackable(const WeightView& w);
// True when the load repacks a layer matrix of `type` (forward/weights.cpp): every repackable type but
// Q8_0, whose Rows8 kernels add in another float order than its file layout's (Gemma 3's attn_v in that
// order missed a llama.cpp near-tie by one token) and whose repack into fresh memory at load cost the first
// token more than it gave (docs/benchmarks/96-quiet-session8.md). The Q8_0 output matrix is repacked after
// the first pass instead, read until then in the Rows8 order (forward/output_repack.h).
bool repacked_at_load(TensorType type);

// Bytes of w repacked (w.rows * w.row_bytes for the 32-block types, 32 more
// per eight rows and super-block for Q4_K), and of one group of eight rows.
size_t rows8_bytes(const WeightView& w);
size_t rows8_group_bytes(const WeightView& w);

// Writes w (WeightLayout::Rows) repacked into dst (rows8_bytes(w) bytes;
// dst may equal w.data when that is w's own size: each group is read whole
// before it is written). Returns the view of dst. InvalidInput if !repackable(w).
// first_non_finite_scale, when given: set to the byte offset within w (the
// file's layout) of its first fp16 scale that is NaN or infinite, or -1: the
// finite-weights check (reference/model/finite_weights.py) fused into the
// repack's one read of w, so the load reads each repacked matrix once.
WeightView repack_rows8(const WeightView& w, void* dst, ThreadPool& pool, int64_t* first_non_finite_scale = nullptr);

// One matrix of repack_rows8_many: w (WeightLayout::Rows) into dst, as repack_rows8 does it; check:
// fill first_non_finite_scale as repack_rows8's argument is filled.
struct Rows8Job {
    WeightView w;
    void* dst;
    bool check = false;
    int64_t first_non_finite_scale = -1;
};
// Every job repacked as repack_rows8 repacks one, in one pool dispatch over all their groups: a
// dispatch per matrix left the workers spinning between ~200 small ones at a SmolLM2 load (a fifth
// of the build's CPU). InvalidInput, before anything is written, if a job is not repackable.
// reading, when given, is called as each chunk of groups starts, from the thread that runs it, with the address
// of the source bytes the chunk reads first: the load's read-ahead keeps its distance past it (gguf/read_ahead.h).
void repack_rows8_many(std::vector<Rows8Job>& jobs, ThreadPool& pool, const std::function<void(const void*)>& reading = {});
// The view of w's matrix repacked into dst.
WeightView rows8_view(const WeightView& w, void* dst);

// Row r of a Rows8 matrix back in the file's layout: dst holds w.row_bytes.
// The scalar reference reads repacked weights through this (kernels/scalar/matmul.cpp).
void unpack_row8(const WeightView& w, int64_t r, uint8_t* dst);

// Row r of w (either layout) dequantized into dst [w.cols]: exactly the file's row, as dequantize_row
// (quant.h) gives it: the token embedding's lookup, which reads a tied output matrix's Rows8 copy once
// forward/output_repack.h has swapped it in.
void dequantize_weight_row(const WeightView& w, int64_t r, float* dst);

// Bytes of one x8 block (eight rows' block or super-block b).
size_t rows8_block_bytes(TensorType type);

}  // namespace ggufsm
