# The LMDB key layout as C functions, cimported by inbox.pyx (the append of a message).
from libc.stdint cimport uint64_t

cpdef bytes u64(uint64_t v)
cpdef uint64_t tail_u64(bytes key)
cpdef bytes key_u64(bytes prefix, uint64_t v)
cpdef bytes pair(str a, str b)
cpdef bytes under(str a)
cpdef bytes msg(bytes conv_b, uint64_t seq)
cpdef bytes inbox(bytes user_b, uint64_t pos)
