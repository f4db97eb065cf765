namespace Sandbox.Shim.Backend;

/// <summary>
/// An output destination containerd named for a process (stdout or stderr), open for writing: the fd, and whether it
/// is a FIFO. For a FIFO the shim also holds a read end, so it can tell how much its reader has not taken yet
/// (<see cref="ContainerdFifoDrain"/>).
/// </summary>
internal readonly record struct OutputDestination(int Fd, bool IsFifo);
