using static Sandbox.Native.LibCSupplement;

namespace Sandbox.Native;

/// <summary>Puts the terminal on a file descriptor in raw mode (cfmakeraw) and restores its modes on Dispose, so that
/// keys such as ^C and ^D reach a remote terminal instead of acting here. For `sandboxctl exec`.</summary>
public sealed unsafe class TerminalRawMode : IDisposable
{
    private readonly int _fd;
    private readonly byte[] _saved = new byte[TermiosSize];
    private bool _restored;

    private TerminalRawMode(int fd) => _fd = fd;

    /// <summary>Raw mode on <paramref name="fd"/>, or null when it is not a terminal.</summary>
    public static TerminalRawMode? Enter(int fd)
    {
        var mode = new TerminalRawMode(fd);
        var raw = new byte[TermiosSize];
        fixed (byte* saved = mode._saved)
        fixed (byte* rawModes = raw)
        {
            if (tcgetattr_raw(fd, saved) != 0)
                return null;
            Buffer.MemoryCopy(saved, rawModes, TermiosSize, TermiosSize);
            cfmakeraw_raw(rawModes);
            if (tcsetattr_raw(fd, TCSANOW, rawModes) != 0)
                throw new IOException($"cannot put the terminal in raw mode: {Errno.DescribeLast()}");
        }
        return mode;
    }

    public void Dispose()
    {
        if (_restored)
            return;
        _restored = true;
        fixed (byte* saved = _saved)
            tcsetattr_raw(_fd, TCSANOW, saved);
    }
}
