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
//   qh  uint8 [32]         Q5_0/Q5_1: byte 4r+k, bit c = the fifth bit of row r's element 4c+k
//   qs  uint8 [4][32]      Q4/Q5: vector j, byte 4r+k = row r's qs[4j+k]: its low
//                          nibble is element 4j+k, its high nibble element 16+4j+k
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

#include "kernels/matmul.h"
#include "runtime/thread_pool.h"

namespace ggufsm {

constexpr int64_t kRows8 = 8;

// True when `type` has a Rows8 layout (Q4_0, Q4_1, Q5_0, Q5_1).
bool repackable_type(TensorType type);
// True when w (in the file's layout) can be repacked: a repackable type and rows % 8 == 0.
bool repackable(const WeightView& w);

// Writes w (WeightLayout::Rows) repacked into dst (w.rows * w.row_bytes
// bytes; dst may equal w.data: each group is read whole before it is
// written). Returns the view of dst. InvalidInput if !repackable(w).
WeightView repack_rows8(const WeightView& w, void* dst, ThreadPool& pool);

// Row r of a Rows8 matrix back in the file's layout: dst holds w.row_bytes.
// The scalar reference reads repacked weights through this (kernels/scalar/matmul.cpp).
void unpack_row8(const WeightView& w, int64_t r, uint8_t* dst);

// Bytes before qs in an x8 block (d, m, qh), and the x8 block's size.
size_t rows8_header_bytes(TensorType type);
size_t rows8_block_bytes(TensorType type);

}  // namespace ggufsm
