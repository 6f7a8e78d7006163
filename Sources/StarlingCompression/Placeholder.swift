import CLZ4
import CSnappy
import CompressNIO
