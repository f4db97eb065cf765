using System.Text;
using Sandbox.Runtime.Agent;

namespace Sandbox.UnitTests;

/// <summary>
/// The console watch that gates the first hybrid-vsock CONNECT: a marker written while the watcher is reading must
/// never be skipped. (It once advanced to the log's length after reading to the end, skipping whatever the guest wrote
/// in between: in a make test run, a pod's VM whose console showed "sandbox-agent: listening on" failed its boot after
/// 120 s. The first test fails against that code.)
/// </summary>
public class ConsoleLineWaitTests
{
    private const string Marker = "sandbox-agent: listening on ";

    [Fact]
    public async Task A_marker_written_right_after_a_read_reached_the_end_is_still_found()
    {
        // the guest's console: kernel lines, then the marker lands just after the watcher's read saw the end
        var console = new GrowingConsole("[    0.286185] PCI: Fatal: No config space access function found\n");
        console.AfterFirstEndOfFile = () => console.Append(Marker + "vsock:1024 at uptime 1.73s\nsandbox-agent: modprobe virtio_net: 162 ms\n");

        await AgentReadiness.WaitForConsoleLineAsync(console.Open, "console.log", Marker, "pod-1", TimeSpan.FromSeconds(5), CancellationToken.None);
    }

    [Fact]
    public async Task A_marker_split_across_two_writes_is_found()
    {
        var console = new GrowingConsole("boot\n" + Marker[..9]);
        console.AfterFirstEndOfFile = () => console.Append(Marker[9..] + "vsock:1024\n");

        await AgentReadiness.WaitForConsoleLineAsync(console.Open, "console.log", Marker, "pod-2", TimeSpan.FromSeconds(5), CancellationToken.None);
    }

    [Fact]
    public async Task A_log_without_the_marker_times_out_naming_the_sandbox_and_showing_the_last_lines()
    {
        string log = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(log, "[    0.286185] PCI: Fatal: No config space access function found\n");
            var error = await Assert.ThrowsAsync<TimeoutException>(() =>
                AgentReadiness.WaitForConsoleLineAsync(log, Marker, "pod-7", TimeSpan.FromMilliseconds(300), CancellationToken.None));
            Assert.Contains("sandbox pod-7", error.Message);
            Assert.Contains("PCI: Fatal", error.Message);
        }
        finally
        {
            File.Delete(log);
        }
    }
}

/// <summary>A console log the "guest" appends to; each Open gives a stream over its bytes at that moment and after.</summary>
internal sealed class GrowingConsole(string initial)
{
    private readonly List<byte> _bytes = new(Encoding.UTF8.GetBytes(initial));
    private bool _endSeen;

    /// <summary>Runs once, when a read first reaches the end: what the guest writes in that instant.</summary>
    public Action? AfterFirstEndOfFile { get; set; }

    public void Append(string text)
    {
        lock (_bytes) _bytes.AddRange(Encoding.UTF8.GetBytes(text));
    }

    public Stream? Open() => new View(this);

    private sealed class View(GrowingConsole console) : Stream
    {
        private long _position;

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length { get { lock (console._bytes) return console._bytes.Count; } }
        public override long Position { get => _position; set => _position = value; }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n;
            lock (console._bytes)
            {
                n = (int)Math.Max(0, Math.Min(count, console._bytes.Count - _position));
                console._bytes.CopyTo((int)_position, buffer, offset, n);
            }
            _position += n;
            if (n == 0 && !console._endSeen)
            {
                console._endSeen = true;
                console.AfterFirstEndOfFile?.Invoke();
            }
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin) => _position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => Length + offset,
        };

        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
