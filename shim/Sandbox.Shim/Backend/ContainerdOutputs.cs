using static Tmds.Linux.LibC;

namespace Sandbox.Shim.Backend;

/// <summary>
/// The output destinations containerd named for one process, opened together: stdout's kind decides for both streams,
/// as in containerd's runc shim. FIFOs and files are opened by <see cref="ContainerdStdioDestination"/>; a
/// <c>binary://</c> stdout starts one <see cref="LoggingBinary"/> that takes both streams. With a terminal there is no
/// stderr (a logging binary's stderr pipe is closed at once, so that it still sees end of file). A destination
/// containerd did not ask for is null.
/// </summary>
internal sealed record ContainerdOutputs(OutputDestination? Stdout, OutputDestination? Stderr, LoggingBinary? Logger)
{
    public static ContainerdOutputs Open(ProcessStdio stdio, string containerId, string containerdNamespace, string owner, Action<string> log)
    {
        bool hasStderr = !stdio.Terminal;
        if (stdio.Stdout.Length > 0 && StdioPath.Parse(stdio.Stdout, owner, "stdout") is { Kind: StdioPathKind.Binary } binary)
        {
            var logger = LoggingBinary.Start(binary, containerId, containerdNamespace, owner, log);
            if (!hasStderr)
                close(logger.Stderr.Fd);
            return new ContainerdOutputs(logger.Stdout, hasStderr ? logger.Stderr : null, logger);
        }

        OutputDestination? stdout = stdio.Stdout.Length > 0 ? ContainerdStdioDestination.OpenOutput(stdio.Stdout, owner, "stdout") : null;
        try
        {
            OutputDestination? stderr = hasStderr && stdio.Stderr.Length > 0 ? ContainerdStdioDestination.OpenOutput(stdio.Stderr, owner, "stderr") : null;
            return new ContainerdOutputs(stdout, stderr, null);
        }
        catch
        {
            if (stdout is { } opened)
                close(opened.Fd);
            throw;
        }
    }
}
