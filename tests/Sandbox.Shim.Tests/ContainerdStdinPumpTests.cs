using System.Text;
using Microsoft.Win32.SafeHandles;
using Sandbox.Native;
using Sandbox.Shim.Backend;
using static Tmds.Linux.LibC;

namespace Sandbox.Shim.Tests;

/// <summary>
/// How containerd's stdin FIFO reaches a process: until the client closes its end, or CloseIO after the FIFO drained.
/// The bounds on waits below only keep a broken pump from hanging the run; nothing asserts on how long anything takes.
/// </summary>
public sealed class ContainerdStdinPumpTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly string _dir = Directory.CreateTempSubdirectory("pump-").FullName;

    private string Fifo => Path.Combine(_dir, "stdin");

    public ContainerdStdinPumpTests()
    {
        Assert.Equal(0, LibCStrings.mkfifo(Fifo, 0b110_000_000));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task The_input_ends_when_the_client_closes_its_end_without_CloseIO()
    {
        var (pump, received) = StartPump();
        byte[] data = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 20000).Select(i => $"{i}\n")));

        await using (var client = OpenClientEnd())
            await client.WriteAsync(data);

        await pump.Completed.WaitAsync(Bound);
        Assert.Equal(data, await received.WaitAsync(Bound));
    }

    [Fact]
    public async Task CloseIO_delivers_what_is_in_the_fifo_then_ends_the_input_while_the_client_keeps_its_end_open()
    {
        var (pump, received) = StartPump();
        await using var client = OpenClientEnd();
        await client.WriteAsync("still in the fifo\n"u8.ToArray());

        pump.RequestClose();

        await pump.Completed.WaitAsync(Bound);
        Assert.Equal("still in the fifo\n", Encoding.ASCII.GetString(await received.WaitAsync(Bound)));
    }

    [Fact]
    public async Task A_client_that_opens_its_end_late_is_waited_for()
    {
        var (pump, received) = StartPump();
        await Task.Delay(ContainerdStdinPump.DrainQuietPeriodMs * 3); // a pump taking "no writer yet" for the end would stop here

        await using (var client = OpenClientEnd())
            await client.WriteAsync("late\n"u8.ToArray());

        await pump.Completed.WaitAsync(Bound);
        Assert.Equal("late\n", Encoding.ASCII.GetString(await received.WaitAsync(Bound)));
    }

    [Fact]
    public async Task Stop_ends_the_input_and_closes_the_destination()
    {
        var (pump, received) = StartPump();

        pump.Stop();

        await pump.Completed.WaitAsync(Bound);
        Assert.Empty(await received.WaitAsync(Bound));
    }

    /// <summary>The pump from the FIFO (opened as the backends open it) into a pipe whose other end is read to its end.</summary>
    private (ContainerdStdinPump Pump, Task<byte[]> Received) StartPump()
    {
        int source = ContainerdStdioDestination.OpenStdin(Fifo, "test");
        var (readEnd, writeEnd) = CreatePipe();
        var pump = ContainerdStdinPump.Start(source, writeEnd, "test");
        var received = Task.Run(async () =>
        {
            await using var reader = new FileStream(new SafeFileHandle(readEnd, ownsHandle: true), FileAccess.Read, bufferSize: 0);
            using var all = new MemoryStream();
            await reader.CopyToAsync(all);
            return all.ToArray();
        });
        return (pump, received);
    }

    private static unsafe (int ReadEnd, int WriteEnd) CreatePipe()
    {
        int* fds = stackalloc int[2];
        Assert.Equal(0, pipe2(fds, O_CLOEXEC));
        return (fds[0], fds[1]);
    }

    /// <summary>The client's (ctr's) end: opening for writing does not block, the pump already reads.</summary>
    private FileStream OpenClientEnd() => new(Fifo, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
}
