using Sandbox.Native;
using Sandbox.Shim.Backend;
using static Tmds.Linux.LibC;

namespace Sandbox.Shim.Tests;

/// <summary>
/// The shim closes an output FIFO (and reports the exit) only once its reader has taken everything in it, because
/// containerd 1.6.20's client stops reading as soon as it deletes the task. The bounds on waits only keep a broken
/// drain from hanging the run; nothing asserts on how long anything takes.
/// </summary>
public sealed class ContainerdFifoDrainTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly string _dir = Directory.CreateTempSubdirectory("drain-").FullName;

    private string Fifo => Path.Combine(_dir, "stdout");

    public ContainerdFifoDrainTests()
    {
        Assert.Equal(0, LibCStrings.mkfifo(Fifo, 0b110_000_000));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task The_wait_ends_only_once_the_reader_has_taken_every_byte()
    {
        var destination = ContainerdStdioDestination.OpenOutput(Fifo, "test", "stdout");
        try
        {
            Assert.True(destination.IsFifo);
            await using var reader = new FileStream(Fifo, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
            Write(destination.Fd, 10_000);

            var drained = ContainerdFifoDrain.WaitUntilReadAsync(destination, CancellationToken.None);
            await Task.Delay(200);
            Assert.False(drained.IsCompleted, "the wait ended while 10000 bytes were still in the FIFO");

            var buffer = new byte[4_000];
            await reader.ReadExactlyAsync(buffer);
            await Task.Delay(100);
            Assert.False(drained.IsCompleted, "the wait ended while 6000 bytes were still in the FIFO");

            await reader.ReadExactlyAsync(new byte[6_000]);
            Assert.Null(await drained.WaitAsync(Bound));
        }
        finally
        {
            close(destination.Fd);
        }
    }

    [Fact]
    public async Task A_reader_that_takes_nothing_is_given_up_on_with_the_unread_count()
    {
        var destination = ContainerdStdioDestination.OpenOutput(Fifo, "test", "stdout");
        try
        {
            Write(destination.Fd, 1234);

            string? problem = await ContainerdFifoDrain.WaitUntilReadAsync(destination, CancellationToken.None, TimeSpan.FromMilliseconds(300)).WaitAsync(Bound);

            Assert.NotNull(problem);
            Assert.Contains("1234 bytes were still unread", problem);
        }
        finally
        {
            close(destination.Fd);
        }
    }

    [Fact]
    public async Task An_empty_fifo_and_a_file_need_no_wait()
    {
        var fifo = ContainerdStdioDestination.OpenOutput(Fifo, "test", "stdout");
        var file = ContainerdStdioDestination.OpenOutput("file://" + Path.Combine(_dir, "log"), "test", "stdout");
        try
        {
            Assert.False(file.IsFifo);
            Write(file.Fd, 100);
            Assert.Null(await ContainerdFifoDrain.WaitUntilReadAsync(fifo, CancellationToken.None).WaitAsync(Bound));
            Assert.Null(await ContainerdFifoDrain.WaitUntilReadAsync(file, CancellationToken.None).WaitAsync(Bound));
        }
        finally
        {
            close(fifo.Fd);
            close(file.Fd);
        }
    }

    private static unsafe void Write(int fd, int count)
    {
        fixed (byte* data = new byte[count])
            Assert.True(FileDescriptors.WriteAll(fd, data, count));
    }
}
